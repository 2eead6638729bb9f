import glob
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aigckit.errors import AigcError
from aigckit.provenance import png_bytes
from aigckit.serving.history import MAX_PAGE, HistoryStore, ImageStore, new_id


def pg_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="module")
def postgres_server():
    """A throwaway PostgreSQL cluster in a temporary folder, reached over a Unix socket; yields a URL maker."""
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    bin_dir = pg_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="aigckit-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"),
       "-o", f"-k {folder} -c listen_addresses='' -p 5432 -F", "start")
    try:
        import psycopg

        def new_database_url() -> str:
            name = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(host=str(folder), port=5432, user="postgres", dbname="postgres",
                                 autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {name}")
            return f"postgresql+psycopg://postgres@/{name}?host={folder}&port=5432"

        yield new_database_url
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh, empty history database URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'history.db'}"
    return request.getfixturevalue("postgres_server")()


def add(store: HistoryStore, model: str = "ddpm-digits", **fields) -> str:
    base = dict(model_id=model, kind="image", job_type="images.generations", params={"n": 2, "steps": 20},
                status="done", checkpoint_sha256="c" * 64, seed=7, queued_ms=1.5, run_ms=20.0,
                outputs=["a" * 64, "b" * 64])
    return store.record(**{**base, **fields})


def test_record_and_get_round_trip(url):
    store = HistoryStore(url)
    record_id = add(store, api_key_name="alice", seed=2**63 - 1)
    record = store.get(record_id)
    assert record is not None and record.id == record_id
    assert (record.model_id, record.kind, record.job_type, record.status) == ("ddpm-digits", "image",
                                                                             "images.generations", "done")
    assert record.params == {"n": 2, "steps": 20} and record.outputs == ["a" * 64, "b" * 64]
    assert record.seed == 2**63 - 1 and record.api_key_name == "alice" and record.error is None
    assert abs((datetime.now(timezone.utc) - record.created_at).total_seconds()) < 60
    data = record.to_dict()
    assert data["timings"] == {"queued_ms": 1.5, "run_ms": 20.0} and data["created_at"].endswith("Z")
    assert store.get(new_id()) is None and store.get("../etc/passwd") is None
    failed = store.get(add(store, kind="text", job_type="completions", status="failed", error="out of memory",
                           outputs=None, seed=None))
    assert (failed.kind, failed.error, failed.outputs, failed.seed) == ("text", "out of memory", [], None)
    store.close()


def test_a_restart_keeps_the_history(url):
    store = HistoryStore(url)
    ids = [add(store) for _ in range(3)]
    store.close()
    reopened = HistoryStore(url)  # tables exist already: opening again must neither fail nor empty them
    records, _ = reopened.page()
    assert [r.id for r in records] == ids[::-1]
    reopened.close()


def test_pages_newest_first_with_before_and_model(url):
    store = HistoryStore(url)
    ids = [add(store, model="gan" if i % 3 == 0 else "ddpm") for i in range(10)]
    assert ids == sorted(ids)  # ids sort by creation
    seen, cursor = [], None
    for _ in range(3):  # 10 records, 4 a page: exactly 3 pages, the last one without a cursor
        records, cursor = store.page(limit=4, before=cursor)
        seen += [r.id for r in records]
        assert cursor == (records[-1].id if len(seen) < 10 else None)
    assert seen == ids[::-1]
    gan, cursor = store.page(limit=3, model="gan")
    assert [r.id for r in gan] == [ids[9], ids[6], ids[3]] and cursor == ids[3]
    gan, cursor = store.page(limit=3, model="gan", before=cursor)
    assert [r.id for r in gan] == [ids[0]] and cursor is None
    assert store.page(limit=4, before=ids[0]) == ([], None)
    assert store.page(model="nobody") == ([], None)
    records, cursor = store.page(limit=10)
    assert len(records) == 10 and cursor is None  # exactly one page: no empty page after it
    store.close()


def test_many_threads_recording_at_once_lose_nothing(url):
    store = HistoryStore(url)
    threads, per_thread, errors = 8, 25, []

    def work(worker: int) -> None:
        try:
            for i in range(per_thread):
                add(store, model=f"m{worker}", seed=i)
                store.page(limit=5)  # readers interleave with the writers
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    records, _ = store.page(limit=MAX_PAGE)
    assert len(records) == len({r.id for r in records}) == threads * per_thread
    for w in range(threads):
        assert sorted(r.seed for r in store.page(limit=MAX_PAGE, model=f"m{w}")[0]) == list(range(per_thread))
    store.close()


def test_sqlite_is_in_wal_mode_with_a_busy_timeout(tmp_path):
    path = tmp_path / "h.db"
    store = HistoryStore(f"sqlite:///{path}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    with sqlite3.connect(path) as raw:  # WAL is a property of the database file, seen by any connection
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a database URL"),
    ("sqlite://", "in-memory SQLite"),
    ("sqlite:///:memory:", "in-memory SQLite"),
    ("nosuchdb://x/y", "no database driver"),
])
def test_bad_urls_are_one_line_errors(url, message):
    with pytest.raises(AigcError, match=message) as error:
        HistoryStore(url)
    assert "\n" not in str(error.value)


def test_bad_paging_arguments_are_refused(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'h.db'}")
    for kwargs in [{"limit": 0}, {"limit": MAX_PAGE + 1}, {"before": "1 OR 1=1"}, {"before": "../x"}]:
        with pytest.raises(AigcError):
            store.page(**kwargs)
    store.close()


def test_image_store_writes_each_content_once(tmp_path):
    from PIL import Image

    images = ImageStore(tmp_path)
    png = png_bytes(Image.new("L", (8, 8), 9), {"model": "m"})
    sha = images.put(png)
    path = images.path(sha)
    assert path == tmp_path / "images" / sha[:2] / f"{sha}.png" and path.read_bytes() == png
    assert images.exists(sha)
    written = path.stat().st_mtime_ns
    os.utime(path, ns=(0, 0))
    assert images.put(png) == sha and path.stat().st_mtime_ns == 0  # second put wrote nothing
    assert written != 0
    other = images.put(png_bytes(Image.new("L", (8, 8), 10), {"model": "m"}))
    assert other != sha and images.exists(other)
    assert sorted(p.name for p in (tmp_path / "images").rglob("*") if p.is_file()) == sorted(
        [f"{sha}.png", f"{other}.png"])  # no temporaries left


@pytest.mark.parametrize("name", ["../x", "../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 64 + "\n",
                                  "/etc/passwd", ""])
def test_image_store_refuses_names_that_are_no_sha256(tmp_path, name):
    images = ImageStore(tmp_path)
    with pytest.raises(AigcError):
        images.path(name)
    assert images.exists(name) is False


def test_image_store_takes_png_only(tmp_path):
    with pytest.raises(ValueError):
        ImageStore(tmp_path).put(b"GIF89a")


def test_video_store_keeps_mp4_files_by_content(tmp_path):
    from aigckit.serving.history import VideoStore

    videos = VideoStore(tmp_path)
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # an MP4's first box, enough for the check
    sha = videos.put(mp4)
    assert videos.path(sha) == tmp_path / "videos" / sha[:2] / f"{sha}.mp4" and videos.exists(sha)
    with pytest.raises(ValueError):
        videos.put(b"\x89PNG\r\n\x1a\n")


def test_ids_strictly_increase_even_when_the_clock_stands_still(monkeypatch):
    from types import SimpleNamespace

    from aigckit.serving import history

    monkeypatch.setattr(history, "time", SimpleNamespace(time_ns=lambda: 1_700_000_000_000_000_000))
    ids = [new_id() for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(len(i) == 24 for i in ids)
