"""investigation region of the console."""
