"""Rule script (not yet implemented)."""
raise NotImplementedError("descriptors")
