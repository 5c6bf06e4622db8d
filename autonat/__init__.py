"""autonat: masked generative image synthesis with non-autoregressive transformers."""
__version__ = "0.1.0"
