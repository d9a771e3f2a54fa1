"""Allow ``python -m msl`` as a synonym of the ``msl`` console script."""

from msl.cli import main

main()
