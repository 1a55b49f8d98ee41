"""timeline region of the console."""
