"""Incident drills: break the running service on purpose, live, and watch every signal.

`python3 tasks.py drill NAME` switches feature flags in the flag file the service
watches (or stops a service: the dice-roller, the die-service or the database),
drives traffic with the project's generator, tells the user where to look, and checks
through each component's HTTP API that the metrics, logs, traces and alerts responded;
then it puts the flags back (or starts the service again, and watches it come back).
docs/drills.md tours each drill.

Modules, one job each: `flagfile` (read, switch and restore the flag file, atomically),
`outage` (stop a service and start it again), `settings` (URLs as verify takes them,
the flag file, the stop and start commands, the pace), `traffic` (the generator in
rounds), `context` (what probes share), `probes` (metrics, logs, traces, the
generator's verdict), `upstream_probes` (an outage as its caller sees it),
`database_probes` (the database down, two hops from the rolls),
`alert_probes` (an alert from Prometheus to the receiver), `timing` (how long to wait,
from the alert windows), `catalogue` (the drills), `runner` (one run, start to finish)
and `cli`.
"""
