"""Encoder implementations, one module each; ``models.ENCODERS`` imports them on first lookup."""
