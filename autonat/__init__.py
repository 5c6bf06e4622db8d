"""autonat: masked generative image synthesis with non-autoregressive transformers."""
from pathlib import Path

__version__ = "0.1.0"

#: The weights shipped inside the package (the demo model, the digit classifier).
ASSETS = Path(__file__).resolve().parent / "assets"
