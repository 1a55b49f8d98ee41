"""gauge region of the console."""
