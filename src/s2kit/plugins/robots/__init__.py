"""Built-in robots."""
