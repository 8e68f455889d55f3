"""`python -m alert_receiver`, the same as the `alert-receiver` command."""

import sys

from .cli import main

sys.exit(main(prog="python -m alert_receiver"))
