"""The audit package's own log (a sink or a monitor that failed), through structlog.

structlog is imported at the first message, not with the package: importing it costs about
80 ms (it always imports ``structlog.dev``, which loads rich's console renderer when rich is
installed), and the trail writes to its sinks without it. Messages go through the host
application's structlog configuration; the library never calls ``structlog.configure``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["log"]


def log() -> Any:
    """The ``securecustomer.audit`` logger: structlog's ``get_logger``, at the first message."""
    import structlog

    return structlog.get_logger("securecustomer.audit")
