"""The released weight formats ``autonat convert`` reads, named without loading anything.

Nothing here imports torch, so the command line can offer ``--kind`` choices
without loading it; :mod:`autonat.convert` uses the same table.
"""

#: ``--kind`` values and the detected kinds (:func:`autonat.io.released.identify`) each accepts.
KINDS = {
    "autonat": ("autonat",),
    "maskgit-vqgan": ("maskgit-vqgan", "maskgit-vqgan-muse"),
    "taming": ("taming-vqgan",),
}
