"""alert-receiver: Alertmanager's notifications, one JSON line per alert on stdout.

Alertmanager (stack/alertmanager/alertmanager.yml) posts every notification to this
service's `POST /alerts` as its webhook payload, version 4. Each alert in it becomes one
line on stdout, which Alloy ships to Loki like any container's output, so a user sees
the alerts where they read every other log: `{compose_service="alert-receiver"}`.

It is written with the standard library only: there is nothing to install or lock,
its image is the pinned Python base plus this folder, and the tests and the native
stack put the folder on the import path (alert-receiver/README.md).

- `limits`: every bound it keeps against what a client sends, and how it cuts text;
- `payload`: reading a webhook payload into lines, or saying what is wrong with it;
- `server`: the HTTP endpoints;
- `cli`: the `python -m alert_receiver` command.
"""

SERVICE_NAME = "alert-receiver"
__version__ = "0.1.0"
