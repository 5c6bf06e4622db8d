"""Files: atomic writes and output markers, YAML recipes and overrides, safe weight reading and writing."""
