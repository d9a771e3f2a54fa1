"""Model organisms: small models the project trains itself, with planted behaviours.

The committed files live next to this module: ``sentiment/`` and ``sentiment-refined/``
(Hugging Face directories), ``relu-net.onnx``, ``relu-net-pruned.onnx`` and
``relu-net-quantized.onnx``. :mod:`msl.organisms.train` makes them reproducibly; the
model cards (``sentiment/ORGANISM.md``, ``sentiment-refined/ORGANISM.md``,
``relu-nets.md``) say what is planted and what was measured.
"""
