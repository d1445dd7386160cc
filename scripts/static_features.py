"""Rule script (not yet implemented)."""
raise NotImplementedError("static_features")
