"""wasserflow.engine (see DESIGN.md section 4)."""
