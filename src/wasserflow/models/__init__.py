"""wasserflow.models (see DESIGN.md section 4)."""
