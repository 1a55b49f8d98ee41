"""screens region of the console."""
