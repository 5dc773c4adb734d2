"""melstream shards package."""
