"""The checklist of docs/checklist.md as a program: check a running stack, box by box.

`python3 tasks.py verify` (or `make verify`) asks each component of the stack,
through its own HTTP API, what the checklist would have a person click through:
the service answers, Prometheus scrapes it, Alloy ships its logs to Loki, Tempo
holds its traces, a trace leads to its logs, and Grafana's dashboard has data.

It talks to the stack through `stackclient` (one client per component, errors that
name it, one way to wait). Modules, one job each: `model` (a check and its result),
`sources` (what a check relied on: components, repository files), `context` (settings
and findings shared between checks), one module per checklist section (`service`,
`metrics`, `logs`, `traces`, `dashboard`, `traffic`), the helpers the trace checks
follow a trace with (`tempo` for what Tempo's answer means, `otlp_json` for the spans
it holds, `trace_link` for Grafana's trace-to-logs link), `summary` (the report's
opening: what answered, how to start the rest), `report` (text and JSON) and `cli`.
"""
