"""Rule script (not yet implemented)."""
raise NotImplementedError("summary")
