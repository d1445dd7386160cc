"""Rule script (not yet implemented)."""
raise NotImplementedError("baseline")
