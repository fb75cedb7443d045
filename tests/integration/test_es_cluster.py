"""The launcher's multi-node mode: N nodes join one cluster; one can be killed and restarted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.es_cluster import EsCluster
from tests.support.worker_proc import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.elasticsearch]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EsCluster]:
    """A 2-node cluster of this module's own (not the session's node)."""
    with EsCluster(tmp_path_factory.mktemp("es-cluster") / "state", nodes=2) as c:
        yield c


def _pid_alive(pid: int) -> bool:
    """True while the pid is a running node (a reaped-late zombie has an empty cmdline)."""
    try:
        return b"MemlaneEsNode" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.timeout(400)
def test_two_nodes_join_one_cluster_with_node_0_as_master(cluster: EsCluster) -> None:
    """Both nodes answer for the same cluster; node 0 is the elected master, node 1 data-only."""
    assert len(cluster.urls) == 2 and cluster.urls[0] != cluster.urls[1]
    infos = [cluster.get("/", i) for i in range(2)]
    assert infos[0]["cluster_uuid"] == infos[1]["cluster_uuid"] != "_na_"
    nodes = {n["name"]: n for n in cluster.get("/_cat/nodes?format=json&h=name,node.role,master")}
    assert nodes["memlane-node-0"]["master"] == "*"
    assert nodes["memlane-node-1"]["node.role"] == "d"
    assert cluster.health()["number_of_nodes"] == 2


@pytest.mark.timeout(400)
def test_kill_and_start_one_node_by_index(cluster: EsCluster) -> None:
    """``kill 1`` removes node 1 from the cluster at once; ``start 1`` brings it back on its URL."""
    pid = cluster.pid(1)
    assert pid is not None and _pid_alive(pid)
    url = cluster.urls[1]
    cluster.kill(1)
    assert not _pid_alive(pid) and cluster.pid(1) is None
    wait_until(
        lambda: cluster.health()["number_of_nodes"] == 1, 60, "node 0 to see node 1 leave", 0.5
    )
    cluster.start(1)
    assert cluster.health("wait_for_nodes=2&timeout=30s")["number_of_nodes"] == 2
    assert cluster.get("/", 1)["name"] == "memlane-node-1"
    assert cluster.urls[1] == url


@pytest.mark.timeout(400)
def test_down_stops_every_node_and_removes_their_dirs(tmp_path: Path) -> None:
    """``down`` on a 2-node cluster leaves no JVM and no temp dir behind."""
    c = EsCluster(tmp_path / "state", nodes=2).up()
    try:
        pids = [c.pid(i) for i in range(2)]
        dirs = [c.node_dir(i) for i in range(2)]
        assert all(p is not None and _pid_alive(p) for p in pids)
    finally:
        c.down()
    assert not any(p is not None and _pid_alive(p) for p in pids)
    assert not any(d.exists() for d in dirs)
    assert not (tmp_path / "state" / "nodes").exists()
    assert set(os.listdir(tmp_path / "state")) == {".gitignore", "lock"}
