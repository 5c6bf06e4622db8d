"""Generator training: the typed recipe, masking and loss, the accelerate loop and its run directory."""
