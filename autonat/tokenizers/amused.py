"""aMUSEd's VQ model (diffusers ``VQModel``) behind the tokenizer interface.

An aMUSEd checkpoint is a diffusers pipeline folder (``model_index.json`` with
``_class_name: AmusedPipeline``); its ``vqvae/`` subfolder holds a ``VQModel``
with ``lookup_from_codebook: true``. The pipeline uses it as follows, and so
does :class:`AmusedVQTokenizer`:

* images are in ``[0, 1]`` (its image processor has ``do_normalize=False``);
* ``encode``: ``quantize(vqvae.encode(x).latents)`` -> the nearest codebook
  entry of each latent vector (Euclidean), ``[B, h, w]`` with
  ``h = H / 2 ** (len(block_out_channels) - 1)``;
* ``decode``: ``vqvae.decode(ids, force_not_quantize=True, shape=(B, h, w, latent_channels))``
  (a codebook lookup, ``post_quant_conv``, the decoder) clipped to ``[0, 1]``.

diffusers and transformers are optional (the ``diffusers`` extra);
:func:`autonat.io.diffusers_folder.import_diffusers` says how to install them.
"""
from __future__ import annotations

import torch

from autonat.errors import AutonatError


class AmusedVQTokenizer(torch.nn.Module):
    """A diffusers ``VQModel`` as a :class:`~autonat.tokenizers.base.Tokenizer` for ``image_size`` images."""

    def __init__(self, vqvae: torch.nn.Module, image_size: int) -> None:
        super().__init__()
        config = vqvae.config
        if not config.lookup_from_codebook:
            raise AutonatError("this VQModel has lookup_from_codebook: false, so it does not decode token ids "
                               "(aMUSEd's VQ models have it true); use the vqvae/ of an aMUSEd pipeline")
        self.vqvae = vqvae
        self.image_size = int(image_size)
        self.scale = 2 ** (len(config.block_out_channels) - 1)  # the pipeline's vae_scale_factor
        if self.image_size % self.scale:
            raise AutonatError(f"image size {self.image_size} is not a multiple of the VQ model's "
                               f"downsampling factor {self.scale}")

    @property
    def codebook_size(self) -> int:
        return int(self.vqvae.config.num_vq_embeddings)

    @property
    def grid(self) -> tuple[int, int]:
        side = self.image_size // self.scale
        return side, side

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> nearest codebook ids ``[B, H / f, W / f]`` (as aMUSEd's img2img)."""
        latents = self.vqvae.encode(images.to(self.vqvae.dtype)).latents
        ids = self.vqvae.quantize(latents)[2][2]
        return ids.reshape(latents.shape[0], latents.shape[2], latents.shape[3])

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """``LongTensor[B, h, w]`` -> ``[B, 3, h f, w f]`` in [0, 1] (the pipeline's decode call)."""
        b, h, w = tokens.shape
        shape = (b, h, w, self.vqvae.config.latent_channels)
        return self.vqvae.decode(tokens, force_not_quantize=True, shape=shape).sample.clip(0, 1)
