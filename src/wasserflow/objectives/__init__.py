"""wasserflow.objectives (see DESIGN.md section 4)."""
