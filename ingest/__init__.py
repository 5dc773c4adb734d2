"""melstream ingest package."""
