"""Rule script (not yet implemented)."""
raise NotImplementedError("demo_data")
