"""The HTTP API: thin FastAPI routes over the domain (identities, functions, data, tasks)."""

from .app import create_app

__all__ = ["create_app"]
