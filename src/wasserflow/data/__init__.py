"""wasserflow.data (see DESIGN.md section 4)."""
