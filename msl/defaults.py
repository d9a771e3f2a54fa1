"""Default paths and texts that the command line shows in its help.

They live apart from the modules that use them (:mod:`msl.baseline`, :mod:`msl.catalog`,
which re-export them) so that building the ``msl`` command does not import pydantic and the
findings model: ``msl --help`` and ``msl vnnlib`` start without them.
"""

from pathlib import Path

#: The reason recorded for violations accepted into a baseline when none is given.
DEFAULT_REASON = "accepted known violation"
#: Where ``msl baseline`` writes by default, at the project root beside ``specs/``.
DEFAULT_BASELINE = Path("msl-baseline.json")
#: The environment variable naming the catalogue database.
ENV_VAR = "MSL_CATALOG"
#: The catalogue database when neither ``--catalog`` nor :data:`ENV_VAR` names one.
DEFAULT_CATALOG = Path(".msl") / "catalog.sqlite"
