"""melstream pipeline package."""
