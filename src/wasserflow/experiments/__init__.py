"""wasserflow.experiments (see DESIGN.md section 4)."""
