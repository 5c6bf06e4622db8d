"""The U-ViT masked-token generator, the official AutoNAT weight layout, and checkpoints."""
