"""Rule script (not yet implemented)."""
raise NotImplementedError("export_labels")
