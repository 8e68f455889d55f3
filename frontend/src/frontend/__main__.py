"""`python -m frontend`, the same as the `frontend` command."""

import sys

from .cli import main

sys.exit(main(prog="python -m frontend"))
