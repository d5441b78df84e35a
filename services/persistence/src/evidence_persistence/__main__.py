"""Run the command line with ``python -m evidence_persistence``."""

from evidence_persistence.cli import main

main()
