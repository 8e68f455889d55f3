"""``python -m traffic_gen``: the same command as ``traffic-gen``."""

import sys

from .cli import main

sys.argv[0] = "python -m traffic_gen"  # argparse names the command after argv[0]: __main__.py
raise SystemExit(main())
