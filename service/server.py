"""``memlane serve``: the HTTP service under uvicorn, and the local admin key of ``memlane up``.

What protects the loopback service of the embedded default: **a key, always**. No request is
served without one, on loopback too: a browser page can reach ``127.0.0.1`` (a form post, DNS
rebinding), and so can every other account on the machine. ``memlane up`` starts the service
with ``--local-key``: on first start it creates an admin key and writes it to
``<data_dir>/api_key`` (mode 0600, readable only by the owner); later starts reuse it while it
is still valid. Start-up prints the file's path, never the key, so the key stays out of
terminals' scroll-back and log collectors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import uvicorn

from memlane import Settings
from memlane.logging import get_logger
from service.apikeys import KeyStore
from service.app import create_app

log = get_logger(__name__)
LOCAL_KEY_FILE = "api_key"
LOCAL_KEY_LABEL = "local admin key (memlane up)"


def local_key_path(settings: Settings) -> Path:
    """Where ``memlane up`` keeps the generated admin key."""
    return settings.data_path / LOCAL_KEY_FILE


def ensure_local_key(settings: Settings, keys: KeyStore) -> tuple[Path, bool]:
    """Make sure ``<data_dir>/api_key`` holds a live admin key; returns (path, created)."""
    path = local_key_path(settings)
    try:
        current = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        current = ""
    if current and keys.exists(current):
        return path, False
    s = settings.service
    _info, key = keys.create(None, s.rate_per_s, s.rate_burst, label=LOCAL_KEY_LABEL)
    write_private(path, key + "\n")
    return path, True


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (mode 0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def serve(
    settings: Settings,
    host: str,
    port: int,
    local_key: bool = False,
    replay: Callable[[str], None] | None = None,
) -> int:
    """Run the service until SIGINT/SIGTERM (uvicorn finishes the requests in flight).

    ``replay`` enqueues a dead letter's replay (see :func:`service.app.create_app`).
    """
    app = create_app(settings, replay=replay)
    if local_key:
        path, created = ensure_local_key(settings, app.state.ctx.keys)
        log.info("api_key_file", path=str(path), created=created, mode="0600")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # memlane's logging (structlog, redacted) handles uvicorn's records too
        access_log=False,
        # Nothing in memlane reads the client's address (no access log; buckets are per key), so
        # uvicorn need not rewrite it from X-Forwarded-For on every request.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
