"""`python -m checks`: see `checks.cli`."""

from checks.cli import main

raise SystemExit(main())
