"""``python -m traffic_gen``: the same command as ``traffic-gen``."""

from .cli import main

raise SystemExit(main())
