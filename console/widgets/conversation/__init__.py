"""conversation region of the console."""
