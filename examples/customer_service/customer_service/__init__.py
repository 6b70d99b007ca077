"""An example web service that keeps customer data with securecustomer."""

from customer_service.app import create_app
from customer_service.settings import Settings

__all__ = ["Settings", "create_app"]
