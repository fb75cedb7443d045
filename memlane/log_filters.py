"""Which library records are routine chatter: demoted to DEBUG, so an idle service is quiet.

Celery logs "Task ... received" and "Task ... succeeded" at INFO for every task, and beat
sends the dispatch task every couple of seconds: an idle ``memlane up`` printed 436 such lines
in five minutes (issue 17). uvicorn logs three lines of its own start-up, and Celery one per
broker connection, which ``memlane up``'s summary already says. :class:`Demote` lowers those
records to DEBUG (and drops them unless DEBUG is on); everything else, every warning and error
included, passes unchanged. The rules are data (:data:`QUIET_TASKS`, :data:`QUIET_MESSAGES`)
because the records come from code memlane does not own.

Python warnings are routed to logging too (``logging.captureWarnings``), flattened to one line
(:class:`OneLine`), so that Celery's warning about running as root is a log line in memlane's
format and not five lines of raw text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from memlane.constants import TASK_DISPATCH

# Tasks whose per-run "received" / "succeeded" lines are DEBUG: dispatch runs every few seconds.
QUIET_TASKS: frozenset[str] = frozenset({TASK_DISPATCH})

# Loggers that report a task's receipt and its outcome, with the task's name in ``record.data``.
TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")

# logger -> message prefixes logged at DEBUG (start-up lines that the summary of memlane up or
# the worker's "ready" line already cover).
QUIET_MESSAGES: Mapping[str, tuple[str, ...]] = {
    "uvicorn.error": (
        "Started server process",
        "Waiting for application startup",
        "Application startup complete",
        "Finished server process",
        "Waiting for application shutdown",
        "Application shutdown complete",
    ),
    "celery.worker.consumer.connection": ("Connected to ",),
}

WARNINGS_LOGGER = "py.warnings"


def _task_name(record: logging.LogRecord) -> str | None:
    """The task a Celery trace or strategy record is about (Celery passes it in two places)."""
    for found in (getattr(record, "data", None), record.args):
        if isinstance(found, Mapping) and isinstance(found.get("name"), str):
            return str(found["name"])
    return None


class Demote(logging.Filter):
    """A logger filter: routine INFO records become DEBUG, kept only if DEBUG is enabled."""

    def __init__(self, tasks: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)
        self.prefixes = tuple(prefixes)

    def routine(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is one of the routine records this filter demotes."""
        if record.levelno != logging.INFO:
            return False
        if self.tasks and _task_name(record) in self.tasks:
            return True
        return bool(self.prefixes) and str(record.msg).startswith(self.prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a routine record; pass it on only if its logger logs DEBUG."""
        if not self.routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class OneLine(logging.Filter):
    """A filter for Python's warnings: the message on one line, without the quoted source line.

    ``warnings.formatwarning`` gives ``file:line: Category: message`` and then the offending
    source line indented by two spaces; the message itself may span lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message by its words joined with single spaces."""
        lines = record.getMessage().rstrip("\n").split("\n")
        if len(lines) > 1 and lines[-1].startswith("  "):
            lines.pop()
        record.msg, record.args = " ".join(" ".join(lines).split()), ()
        return True


def install() -> None:
    """Attach the filters to their loggers, once (a second call replaces the first's)."""
    wanted: dict[str, logging.Filter] = {name: Demote(tasks=QUIET_TASKS) for name in TASK_LOGGERS}
    wanted.update({name: Demote(prefixes=p) for name, p in QUIET_MESSAGES.items()})
    wanted[WARNINGS_LOGGER] = OneLine()
    for name, new in wanted.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, (Demote, OneLine))]:
            logger.removeFilter(old)
        logger.addFilter(new)
    logging.captureWarnings(True)
