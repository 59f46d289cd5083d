"""wasserflow.samplers (see DESIGN.md section 4)."""
