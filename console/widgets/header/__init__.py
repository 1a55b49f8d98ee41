"""header region of the console."""
