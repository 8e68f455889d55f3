"""The stack of stack/compose.yml as plain processes, without Docker.

Prometheus, Alertmanager, Loki and Alloy are built from their Go modules at the exact
versions compose pins, and run on the shipped config files, each in a network namespace
of its own so that the host names of the compose network (`loki:3100`, `tempo:4317`,
`http://prometheus:9090`, `alertmanager:9093`, `alert-receiver:9099`, `alloy:4318`,
`dice-roller:8000`) resolve as they do there.

- `pins`: which version of each component compose pins, and the Go module it is;
- `build`: building and caching those binaries;
- `network`: the namespaces, the bridge between them and their hosts files;
- `docker_api`: the Docker Engine API that Alloy's docker discovery and log source talk to;
- `tempo_standin`: what stands in for Tempo while its module cannot be had;
- `substitutions`: every change the native run makes to the shipped configs;
- `stack`: starting, waiting for and stopping all of it.

`python3 tasks.py nativestack` runs it; the test suite's `nativestack` tests use it too.
"""
