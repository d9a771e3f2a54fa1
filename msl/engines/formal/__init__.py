"""The formal engine: proofs and counterexamples for piecewise-linear (ReLU) networks.

Stages, one module each:

* :mod:`~msl.engines.formal.network` reads a network from ONNX or torch into affine layers with
  ReLUs between them (:class:`PLNetwork`), and replays the original model;
* :mod:`~msl.engines.formal.property` is the problem: input regions and an unsafe linear
  condition in DNF (:class:`Property`, :class:`Condition` and helpers such as
  :func:`argmax_is`);
* :mod:`~msl.engines.formal.verify` decides it (:func:`verify` -> :class:`FormalResult`):
  :mod:`~msl.engines.formal.falsify` (random + PGD), :mod:`~msl.engines.formal.bab` (input
  splitting with the bounds of :mod:`~msl.engines.formal.bounds`), exact leaves by
  :mod:`~msl.engines.formal.pieces` (LPs with checked certificates) and
  :mod:`~msl.engines.formal.smt` (z3 over exact rationals), or for many inputs
  :mod:`~msl.engines.formal.neurons` (ReLU splitting with optimised linear bounds, in torch);
  witnesses accepted only by the rule of :mod:`~msl.engines.formal.witness`;
* :mod:`~msl.engines.formal.equivalence`: epsilon-equivalence of two networks;
* :mod:`~msl.engines.formal.vnnlib`: VNN-LIB files and the ``msl vnnlib`` command.
"""

from msl.engines.formal.equivalence import verify_equivalence
from msl.engines.formal.network import AffineLayer, PLNetwork
from msl.engines.formal.property import (
    Condition,
    InputRegion,
    LinearConstraint,
    Property,
    argmax_is,
    argmax_is_not,
    argmin_is,
    argmin_is_not,
    compare,
    linear,
    output_bound,
)
from msl.engines.formal.verify import FormalResult, verify
from msl.engines.formal.vnnlib import VnnlibAnswer, read_vnnlib, run_vnnlib

__all__ = [
    "AffineLayer",
    "Condition",
    "FormalResult",
    "InputRegion",
    "LinearConstraint",
    "PLNetwork",
    "Property",
    "VnnlibAnswer",
    "argmax_is",
    "argmax_is_not",
    "argmin_is",
    "argmin_is_not",
    "compare",
    "linear",
    "output_bound",
    "read_vnnlib",
    "run_vnnlib",
    "verify",
    "verify_equivalence",
]
