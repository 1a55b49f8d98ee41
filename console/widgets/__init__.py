"""widgets region of the console."""
