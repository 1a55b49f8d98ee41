"""inspector region of the console."""
