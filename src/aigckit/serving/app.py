"""create_app: the FastAPI app over the served models (OpenAI-compatible routes, jobs, history, the web page)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .catalog import ModelCatalog
from .errors import ERRORS, install_error_handlers
from .history import HistoryStore, ImageStore, VideoStore
from .jobs import Job, JobManager
from .metrics import RequestObserver, ServerMetrics
from .routes import admin, audio, completions, health, history, images, jobs, models, videos
from .security import KeyGuard, require_key
from .settings import ServerSettings
from .state import ServerState

__all__ = ["create_app"]

log = logging.getLogger("aigckit.serving")
STATIC = Path(__file__).parent / "static"


def _record(state: ServerState, job: Job) -> None:
    """Write an ended job to the history (in a worker thread: the database may be slow)."""
    result = job.result or {}
    if job.type.startswith("images"):
        kind, outputs = "image", [item["aigckit"]["sha256"] for item in result.get("data", [])]
    elif job.type == "videos":
        kind, outputs = "video", [result["aigckit"]["sha256"]] if result else []
    else:
        kind, outputs = "text", [choice["text"] if "text" in choice else choice["message"]["content"]
                                 for choice in result.get("choices", [])]
    served = state.catalog.models.get(job.model_id)
    state.history.record(
        model_id=job.model_id, kind=kind, job_type=job.type,
        params=job.record, status=job.status, checkpoint_sha256=served.sha256 if served else None,
        seed=job.record.get("seed"), queued_ms=1000 * ((job.started or job.finished) - job.created),
        run_ms=1000 * (job.finished - job.started) if job.started else None, outputs=outputs,
        api_key_name=job.key_name, error=job.error["message"] if job.error else None)


def create_app(settings: ServerSettings | None = None, **fields) -> FastAPI:
    """The server's app; `settings` or its fields as keywords (runs=[...], api_keys={...}, ...)."""
    settings = settings or ServerSettings(**fields)
    guard = KeyGuard(settings)  # refuses bad limits before anything is loaded or created
    catalog = ModelCatalog(settings.runs, device=settings.device, precision=settings.precision)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    state = ServerState(settings=settings, catalog=catalog, jobs=JobManager(timeout_s=settings.request_timeout_s),
                        history=HistoryStore(settings.database_url), images=ImageStore(settings.data_dir),
                        videos=VideoStore(settings.data_dir), metrics=ServerMetrics())

    recording: set[asyncio.Future] = set()  # history writes not yet done; shutdown waits for them

    def ended(job: Job) -> None:
        state.metrics.job_ended(job)
        guard.job_ended(job)
        future = asyncio.get_running_loop().run_in_executor(None, _record, state, job)
        recording.add(future)
        future.add_done_callback(_recorded)

    def _recorded(future: asyncio.Future) -> None:
        recording.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("the history could not record a job: %s", future.exception())

    state.jobs.on_terminal.append(ended)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if not settings.lazy:
            await asyncio.to_thread(catalog.load_all)
        state.ready = True
        yield
        state.ready = False
        state.jobs.cancel_all()  # graceful shutdown: running jobs stop within a step and say why
        for engine in list(state.engines.values()):
            await asyncio.to_thread(engine.stop)
        state.engines.clear()  # an app started again (tests do) makes new engines
        if recording:
            await asyncio.wait(set(recording), timeout=30)
        state.history.close()

    # no unguarded /docs, /redoc, /openapi.json: routes/admin.py serves them behind the key
    app = FastAPI(title="aigckit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="GANs, VAEs, diffusion and language models behind OpenAI-compatible routes.")
    app.state.aigckit = state
    app.state.key_guard = guard
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["X-Aigckit"])
    app.add_middleware(RequestObserver, metrics=state.metrics)  # outermost: sees every answer, CORS's included

    app.include_router(health.router)  # /health needs no key; /ready and /metrics ask for it themselves
    for module in (models, completions, images, videos, audio, jobs, history, admin):
        app.include_router(module.router, dependencies=[Depends(require_key)], responses=ERRORS)
    if STATIC.is_dir():  # the page asks the user for the key, so it and its files load without one
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="page")
    return app
