"""The frontend of stage 2: a page to roll dice on, and the API behind its button."""

SERVICE_NAME = "frontend"
__version__ = "0.1.0"
