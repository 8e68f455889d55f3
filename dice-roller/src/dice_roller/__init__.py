"""dice-roller: a FastAPI dice service that shows metrics, logs and traces working together."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["SERVICE_NAME", "__version__"]

SERVICE_NAME = "dice-roller"

try:
    __version__ = version("dice-roller")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
