"""Text encoders: captions -> the :class:`~autonat.generator.condition.TextCondition` a generator reads.

One interface, :class:`~autonat.text.encoders.TextEncoder`, loaded by
:func:`~autonat.text.encoders.load_text_encoder` from a spec (``minilm``,
``clip:<folder>``); see that module for the encoders and their conventions.
"""
from autonat.text.encoders import TextEncoder, load_text_encoder

__all__ = ["TextEncoder", "load_text_encoder"]
