"""wasserflow.metrics (see DESIGN.md section 4)."""
