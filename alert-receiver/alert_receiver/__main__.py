"""`python -m alert_receiver`."""

import sys

from .cli import main

sys.exit(main())
