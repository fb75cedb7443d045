"""A worker's metrics: its pool processes count, its main process serves them on one port.

Celery's prefork pool runs tasks in several processes, so the worker uses ``prometheus_client``'s
**multiprocess mode**: each pool process writes its samples to files in one directory, and the
main process sums them when scraped (``metrics.worker_port``). The directory is this worker's
alone and is emptied when it starts (old files would add a previous run's counts); a pool
process that exits is marked dead there (only live gauges care, and memlane keeps none in
files: the buffer gauges are read from Redis at scrape time).

``prometheus_client`` chooses multiprocess mode once, when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``: :func:`setup_worker_metrics` sets it before anything imports the
library, and refuses to go on if something already did.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from celery import signals

from memlane import tracing
from memlane.config import Settings
from memlane.errors import ConfigError
from memlane.exporter import MULTIPROC_ENV, build_registry, multiproc_dir
from memlane.logging import get_logger
from memlane.metrics import count_retry
from memlane.services import Services

log = get_logger(__name__)


def metrics_dir(settings: Settings, port: int) -> Path:
    """Where this worker's processes write their samples (see ``metrics.multiproc_dir``)."""
    chosen = settings.metrics.multiproc_dir or multiproc_dir()
    return Path(chosen) if chosen else settings.data_path / "metrics" / f"worker-{port}"


def empty_dir(path: Path) -> int:
    """Create ``path`` or remove the sample files a previous run left there; returns how many."""
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for old in path.glob("*.db"):
        old.unlink(missing_ok=True)
        removed += 1
    return removed


def setup_worker_metrics(settings: Settings) -> str | None:
    """Count retries, and serve the pool's metrics when ``metrics.worker_port`` is set.

    Call in the worker's main process before the pool starts. Returns the exporter's URL.
    """
    signals.task_retry.connect(_on_retry, weak=False, dispatch_uid="memlane-metrics-retry")
    port = settings.metrics.worker_port
    if port is None:
        return None
    path = metrics_dir(settings, port)
    if "prometheus_client" in sys.modules and multiproc_dir() != str(path):
        raise ConfigError("prometheus_client was imported before the worker chose its metrics dir")
    empty_dir(path)
    os.environ[MULTIPROC_ENV] = str(path)  # the pool processes inherit it
    signals.worker_process_shutdown.connect(
        _on_child_exit, weak=False, dispatch_uid="memlane-metrics-exit"
    )
    from prometheus_client import start_http_server

    host = settings.metrics.worker_host
    try:
        server, _thread = start_http_server(port, host, build_registry(Services(settings)))
    except OSError as e:
        raise ConfigError(
            f"metrics.worker_port: cannot serve metrics on {host}:{port} ({e.strerror}); "
            "give each worker on this host its own port"
        ) from e
    url = f"http://{host}:{server.server_port}/metrics"
    log.info("worker_metrics", url=url, multiproc_dir=str(path))
    return url


def setup_worker_tracing(settings: Settings) -> None:
    """Trace in each pool process when ``tracing.enabled`` (configured after the fork: an
    exporter's thread does not survive it), and in this process (a solo or threads pool)."""
    if not settings.tracing.enabled:
        return

    def configure(**_: Any) -> None:
        tracing.configure_tracing(settings.tracing, "memlane-worker")

    def flush(**_: Any) -> None:
        tracing.shutdown()

    signals.worker_process_init.connect(configure, weak=False, dispatch_uid="memlane-tracing")
    signals.worker_process_shutdown.connect(flush, weak=False, dispatch_uid="memlane-tracing-end")
    configure()


def _on_retry(sender: Any = None, **_: Any) -> None:
    count_retry(str(getattr(sender, "name", None) or "unknown"))


def _on_child_exit(**_: Any) -> None:
    from prometheus_client import multiprocess

    path = multiproc_dir()
    if path is not None:
        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
