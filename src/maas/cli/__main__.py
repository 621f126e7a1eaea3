"""`python -m maas.cli ...` (what the tests and scripts run)."""

from maas.cli import main

main()
