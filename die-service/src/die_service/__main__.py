"""`python -m die_service`, the same as the `die-service` command."""

import sys

from .cli import main

sys.exit(main(prog="python -m die_service"))
