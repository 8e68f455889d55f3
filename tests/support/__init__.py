"""Helpers shared by the test suites: real processes, real tools, free ports, stand-ins.
Every helper lives here, one module per thing (tests/README.md)."""
