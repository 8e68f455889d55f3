"""Simulated users rolling dice against the dice-roller service, or through the frontend.

``cli`` parses options, ``load`` sends requests through ``client`` (``frontend`` as the
frontend's visitors), ``stats`` counts them in constant memory, ``progress`` shows the
run live and ``report`` summarizes it.
"""

__version__ = "0.1.0"
