"""Rule script (not yet implemented)."""
raise NotImplementedError("embed_fit")
