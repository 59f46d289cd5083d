"""wasserflow.paths (see DESIGN.md section 4)."""
