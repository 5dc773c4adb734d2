"""melstream models package."""
