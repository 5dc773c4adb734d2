"""melstream train package."""
