"""What the app holds while it runs: settings, models, their engines, jobs, history and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelCatalog, ServedModel
from .errors import APIError
from .jobs import JobManager
from .settings import ServerSettings

__all__ = ["ServerState"]


@dataclass
class ServerState:
    """The app's state, as `request.app.state.aigckit`."""

    settings: ServerSettings
    catalog: ModelCatalog
    jobs: JobManager
    history: Any  # serving.history.HistoryStore
    images: Any  # serving.history.ImageStore
    metrics: Any  # serving.metrics.ServerMetrics
    engines: dict[str, Any] = field(default_factory=dict)  # model id -> its engine, started on first use
    ready: bool = False

    def model(self, model_id: str | None, kind: str | None = None) -> ServedModel:
        """The served model `model_id`, of `kind` ("image" / "text") when given; 404 or 422 otherwise."""
        try:
            served = self.catalog.get(model_id)
        except KeyError as error:
            raise APIError(404, error.args[0], "not_found_error") from None
        if kind is not None and served.kind != kind:
            other = "/v1/completions or /v1/chat/completions" if served.kind == "text" else "/v1/images/generations"
            raise APIError(422, f"{model_id} is a{'n' if served.kind == 'image' else ''} {served.kind} model; "
                                f"use {other} with it")
        return served
