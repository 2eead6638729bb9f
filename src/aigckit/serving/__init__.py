"""The HTTP server: OpenAI-compatible routes, jobs, history and a web page over trained runs."""

from .app import create_app
from .settings import Limits, ServerSettings

__all__ = ["create_app", "Limits", "ServerSettings"]
