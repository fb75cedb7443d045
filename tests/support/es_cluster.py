"""A multi-node Elasticsearch cluster of the test's own, run by ``tools/es-node/es-node.sh``.

``ES_NODES=N es-node.sh up`` starts node 0 (the only master-eligible node, also holding data)
and N-1 data-only nodes that join it; ``kill I`` SIGKILLs node I and ``start I`` brings it back
on the same data dir and ports. :class:`EsCluster` wraps those commands for tests and always
runs ``down`` when it leaves its ``with`` block, so no JVM outlives a failed test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.services import ES_SCRIPT

START_TIMEOUT_S = 300  # a loaded 2-core machine starts a node in 5-20 s; several in a row


@dataclass
class EsCluster:
    """N nodes in one cluster, with their state under ``state_dir``."""

    state_dir: Path
    nodes: int = 2
    heap: str = "512m"
    urls: list[str] = field(default_factory=list)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "ES_NODE_STATE": str(self.state_dir),
            "ES_NODES": str(self.nodes),
            "ES_HEAP": self.heap,
            "ES_START_TIMEOUT": str(START_TIMEOUT_S - 30),
        }
        env.pop("ES_PORT", None)
        return subprocess.run(
            ["bash", str(ES_SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )

    def _checked(self, *args: str) -> str:
        out = self._run(*args)
        if out.returncode != 0:
            raise RuntimeError(f"es-node.sh {' '.join(args)} failed:\n{out.stderr[-4000:]}")
        return out.stdout

    def up(self) -> EsCluster:
        """Start the cluster and wait until every node has joined; fills :attr:`urls`."""
        lines = dict(line.split("=", 1) for line in self._checked("up").splitlines() if "=" in line)
        self.urls = lines["ES_URLS"].split(",")
        assert lines["ES_URL"] == self.urls[0]
        return self

    @property
    def url(self) -> str:
        """Node 0's URL (the master's)."""
        return self.urls[0]

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (its process group); its data dir is kept."""
        self._checked("kill", str(index))

    def start(self, index: int) -> None:
        """Restart node ``index`` on its old ports and wait until it has rejoined."""
        self._checked("start", str(index))

    def down(self) -> None:
        """Stop every node and remove their temp dirs (safe to repeat)."""
        self._run("down")

    def pid(self, index: int) -> int | None:
        """The JVM pid of node ``index``, or None when it is not running."""
        path = self.state_dir / f"node-{index}" / "pid"
        return int(path.read_text()) if path.exists() else None

    def node_dir(self, index: int) -> Path:
        """Node ``index``'s temp dir (home, data and node.log)."""
        return Path((self.state_dir / f"node-{index}" / "tmpdir").read_text().strip())

    def get(self, path: str, index: int = 0) -> Any:
        """GET ``path`` on node ``index`` and decode the JSON answer."""
        with urllib.request.urlopen(f"{self.urls[index]}{path}", timeout=60) as resp:
            return json.loads(resp.read())

    def health(self, query: str = "") -> dict[str, Any]:
        """``_cluster/health`` as seen by node 0 (``query`` e.g. ``wait_for_status=green``).

        A wait that times out answers 408 with the same body (``timed_out: true``).
        """
        try:
            result: dict[str, Any] = self.get(f"/_cluster/health?{query}")
        except urllib.error.HTTPError as e:
            if e.code != 408:
                raise
            result = json.loads(e.read())
        return result

    def tails(self, lines: int = 40) -> str:
        """The last lines of every node's log, labelled."""
        out = []
        for i in range(self.nodes):
            try:
                text = (self.node_dir(i) / "node.log").read_text(errors="replace")
            except OSError as e:
                text = f"(no log: {e})"
            out.append(f"----- node {i} -----\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    def __enter__(self) -> EsCluster:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            print(f"\n===== Elasticsearch node logs ({exc_type.__name__}) =====", file=sys.stderr)
            print(self.tails(), file=sys.stderr)
        self.down()
