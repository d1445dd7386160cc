"""Rule script (not yet implemented)."""
raise NotImplementedError("dsc")
