"""The die-service of stage 3: the one place that says what each die is."""

SERVICE_NAME = "die-service"
__version__ = "0.1.0"
