"""The JSON API (PROTOCOL §4)."""
