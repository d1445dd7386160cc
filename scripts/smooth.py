"""Rule script (not yet implemented)."""
raise NotImplementedError("smooth")
