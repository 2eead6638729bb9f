"""What the app holds while it runs: settings, models, their engines, jobs, history and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelCatalog, ServedModel
from .errors import APIError
from .jobs import JobManager
from .settings import ServerSettings

__all__ = ["ServerState"]

ROUTES = {"image": "/v1/images/generations", "video": "/v1/videos", "text": "/v1/completions or /v1/chat/completions"}


@dataclass
class ServerState:
    """The app's state, as `request.app.state.aigckit`."""

    settings: ServerSettings
    catalog: ModelCatalog
    jobs: JobManager
    history: Any  # serving.history.HistoryStore
    images: Any  # serving.history.ImageStore
    videos: Any  # serving.history.VideoStore
    metrics: Any  # serving.metrics.ServerMetrics
    engines: dict[str, Any] = field(default_factory=dict)  # model id -> its engine, started on first use
    ready: bool = False

    def may_see(self, key: str | None, owner: str | None) -> bool:
        """Whether the caller with key name `key` may see a job or record made with key name `owner`: its own, or
        all of them for an admin key or on a server without keys."""
        settings = self.settings
        return not settings.api_keys or key in settings.admin_keys or key == owner

    def owner_filter(self, key: str | None) -> str | None:
        """The key name whose records `key` may list: None (all) for admins and servers without keys."""
        settings = self.settings
        return None if not settings.api_keys or key in settings.admin_keys else key

    def model(self, model_id: str | None, kind: str | None = None) -> ServedModel:
        """The served model `model_id`, of `kind` ("image" / "video" / "text") when given; 404 or 422 otherwise."""
        try:
            served = self.catalog.get(model_id)
        except KeyError as error:
            raise APIError(404, error.args[0], "not_found_error") from None
        if kind is not None and served.kind != kind:
            raise APIError(422, f"{model_id} is a{'n' if served.kind == 'image' else ''} {served.kind} model; "
                                f"use {ROUTES[served.kind]} with it")
        return served
