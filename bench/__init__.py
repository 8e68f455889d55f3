"""Benchmarks of the dice-roller: what its telemetry costs, how much it holds, how fast it shows.

Run `python3 tasks.py bench` (or `uv run python -m bench --help`); see docs/performance.md.
Every figure is compared with a baseline measured in the same run, because the
machines this runs on are shared and noisy: only ratios mean something across runs.
"""
