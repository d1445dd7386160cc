"""Rule script (not yet implemented)."""
raise NotImplementedError("provenance")
