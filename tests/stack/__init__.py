"""Checks of the observability stack's configuration, with the real tools where they run here."""
