"""VQ tokenizers: the interface, taming and MaskGIT VQGANs, released checkpoints, training a small one."""
