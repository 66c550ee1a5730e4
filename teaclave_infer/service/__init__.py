"""The platform service: identities, functions, data and tasks over HTTP (FastAPI)."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
