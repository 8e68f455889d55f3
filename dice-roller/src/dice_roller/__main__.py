"""`python -m dice_roller` runs the service, like the `dice-roller` command."""

import sys

from .cli import main

sys.exit(main(prog="python -m dice_roller"))
