"""The ``securecustomer`` command."""

from securecustomer.cli._main import main

__all__ = ["main"]
