"""melstream eval package."""
