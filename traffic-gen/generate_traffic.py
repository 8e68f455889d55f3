"""Generate dice-rolling traffic: ``python generate_traffic.py --help``.

The entry point the checklist runs (docs/checklist.md, Traffic Generation), kept as a
thin shim over the ``traffic_gen`` package so it works without installing the package:
Python puts a script's own directory on ``sys.path``, and the package sits next to it.
"""

from traffic_gen.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
