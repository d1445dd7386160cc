"""Rule script (not yet implemented)."""
raise NotImplementedError("kmeans_sweep")
