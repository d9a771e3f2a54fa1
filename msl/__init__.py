"""MSL, the Model Specification Language.

A spec is parsed (:mod:`msl.parse`) into a typed AST (:mod:`msl.ast`), checked
(:mod:`msl.check`), planned into batched model queries (:mod:`msl.plan`), run by the
engines (:mod:`msl.engines`) and reported as findings (:mod:`msl.findings`,
:mod:`msl.reporters`).
"""

__version__ = "0.1.0"
