"""`aigckit serve RUN_DIR [RUN_DIR ...]`: the HTTP server and web page over trained runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import AigcError
from .common import PrecisionOption, check_precision, err_console, user_errors

__all__ = ["serve_command"]


def _keys(api_key: list[str], keys_file: Path | None) -> tuple[dict[str, str], dict]:
    """Keys ({key: name}) and per-key limits ({name: KeyLimits}) from --api-key, AIGCKIT_API_KEYS and --keys-file."""
    from ..serving.security import parse_key_lines

    sources = [(api_key, "--api-key"), (os.environ.get("AIGCKIT_API_KEYS", "").split(","), "AIGCKIT_API_KEYS")]
    if keys_file is not None:
        if not keys_file.is_file():
            raise AigcError(f"--keys-file {keys_file} does not exist; give a file with one name:key per line")
        sources.append((keys_file.read_text(encoding="utf-8").splitlines(), str(keys_file)))
    keys, limits = {}, {}
    for lines, source in sources:
        more_keys, more_limits = parse_key_lines(lines, source)
        keys.update(more_keys)
        limits.update(more_limits)
    return keys, limits


@user_errors
def serve_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (or local transformers model folders); "
                                                        "each is one model, named by its folder")],
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    lazy: Annotated[bool, typer.Option(help="load each model on its first request")] = False,
    api_key: Annotated[list[str], typer.Option(help="an API key: key, name:key or name:key:rate_per_minute:"
                                                    "concurrency; repeat for several; also AIGCKIT_API_KEYS=k1,k2. "
                                                    "None: no authentication")] = [],
    keys_file: Annotated[Optional[Path], typer.Option(help="a file of API keys, one per line as --api-key takes "
                                                           "them; # comments")] = None,
    admin_key: Annotated[list[str], typer.Option(help="names of keys that may read /v1/usage")] = [],
    data_dir: Annotated[Path, typer.Option(help="where images and the history database go")] = Path("serve-data"),
    db: Annotated[Optional[str], typer.Option(help="SQLAlchemy database URL (default: SQLite in --data-dir; "
                                                   "postgresql+psycopg://... for several server processes)")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:1, ...")] = "auto",
    precision: PrecisionOption = "auto",
    max_queue: Annotated[int, typer.Option(help="requests waiting per model before 429")] = 64,
    batch_window_ms: Annotated[float, typer.Option(help="how long image requests wait to share a batch")] = 20.0,
    max_batch_images: Annotated[int, typer.Option(help="images in one sampler batch (1: one request at a time)")] = 64,
    max_batch_text: Annotated[int, typer.Option(help="sequences decoded together (1: one at a time)")] = 32,
    timeout: Annotated[float, typer.Option(help="seconds a request may run")] = 600.0,
    rate_per_minute: Annotated[Optional[float], typer.Option(help="requests per minute per key")] = None,
    concurrency_per_key: Annotated[Optional[int], typer.Option(help="requests in flight per key")] = None,
    cors_origin: Annotated[list[str], typer.Option(help="an origin allowed by CORS (off by default)")] = [],
) -> None:
    """Serve runs over HTTP: OpenAI-compatible routes, jobs, history, metrics and a web page at /."""
    import uvicorn

    from ..serving import ServerSettings, create_app

    check_precision(precision)
    keys, key_limits = _keys(api_key, keys_file)
    unknown = set(admin_key) - set(keys.values())
    if unknown:
        raise AigcError(f"--admin-key names {', '.join(sorted(unknown))}, which is no key's name; name a key given "
                        f"with --api-key name:key")
    settings = ServerSettings(runs=run_dirs, lazy=lazy, device=device, precision=precision, data_dir=data_dir,
                              db_url=db, api_keys=keys, admin_keys=set(admin_key), max_queue=max_queue,
                              batch_window_ms=batch_window_ms, max_batch_images=max_batch_images,
                              max_batch_text=max_batch_text, request_timeout_s=timeout,
                              rate_per_minute=rate_per_minute, concurrency_per_key=concurrency_per_key,
                              key_limits=key_limits,
                              cors_origins=cors_origin)
    app = create_app(settings)
    where = f"http://{host}:{port}/"
    err_console.print(f"serving {', '.join(served.id for served in app.state.aigckit.catalog)} at {where} "
                      f"({'API keys required' if keys else 'no API keys: anyone who reaches the port may use it'})")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
