"""How the project's tools talk to a running stack: one client per component, one way
to wait, and where the stack is.

verify, the drills, the benches, the native stack and the tests all use these, so a
component that is down, an answer that is wrong, or data that is late reads the same
in each of them.

- `wait_until` (wait.py): asks again until an answer is there or the time is up;
  `answers`, its probe for a server that is starting; `wait_until_serving`, for a
  process of ours that is starting;
- `Api`, `ApiError`, `Component` (http.py): every HTTP call, with errors naming the
  component;
- `Prometheus`, `Loki`, `Tempo`, `Alertmanager`, `Grafana` (backends.py): their APIs;
- `Addresses`, `URL_OPTIONS` (addresses.py): the components' URLs, options and
  environment variables;
- `free_port` (ports.py): a port for a server started on this machine.
"""

from .addresses import URL_OPTIONS, Addresses
from .backends import LOKI_PAGE, Alertmanager, Backend, Grafana, Loki, Prometheus, Tempo
from .http import Api, ApiError, Component, decode_json
from .ports import free_port
from .wait import answers, wait_until, wait_until_serving

__all__ = [
    "LOKI_PAGE",
    "URL_OPTIONS",
    "Addresses",
    "Alertmanager",
    "Api",
    "ApiError",
    "Backend",
    "Component",
    "Grafana",
    "Loki",
    "Prometheus",
    "Tempo",
    "answers",
    "decode_json",
    "free_port",
    "wait_until",
    "wait_until_serving",
]
