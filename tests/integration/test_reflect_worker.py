"""Reflection through a real Celery prefork worker (and real beats): fan-out, early trigger, CLI.

The worker runs in a subprocess on a Redis database of the test's own; its chat model is the
fake LLM server of the test process. Each user is counted by the reflection calls the server saw.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memlane.buffer.unreflected import UnreflectedCounter
from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.constants import QUEUE_REFLECT
from memlane.models import MemoryKind
from memlane.services import Services
from pipelines.reflection.run import EarlyReflection, note_observations
from tasks.reflection import reflect, reflect_nightly
from tests.support.lifecycle import (
    everything,
    is_reflection,
    observation,
    plant,
    reflection_reply,
    shown_observations,
)
from tests.support.llm_rig import llm_overrides
from tests.support.llm_server import LLMServer
from tests.support.worker_proc import (
    Cluster,
    flush_db,
    fresh_db_url,
    wait_until,
    worker_settings_overrides,
)
from worker.app import create_app

pytestmark = [pytest.mark.celery, pytest.mark.redis]

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 9, 1, 20, 0, tzinfo=SH)
TOPICS = {"hobby": ["吉他"], "job": ["工程师"], "food": ["火锅"]}
USERS = ["night-a", "night-b", "night-c"]


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], redis_url: str, llm_server: LLMServer
) -> Iterator[Settings]:
    """A Redis database of the test's own, the fake LLM, reflection early after 3."""
    url = fresh_db_url(redis_url)
    llm_server.add_rule(is_reflection, reflection_reply(TOPICS))
    yield make_settings(
        redis={"url": url},
        reflection={"early_threshold": 3},
        **llm_overrides(llm_server, timeout_s=5.0),
        **worker_settings_overrides(),
    )
    flush_db(url)


def cluster_env(server: LLMServer) -> dict[str, Any]:
    """What the worker needs beyond the default child environment: the chat model."""
    return {"llm__base_url": server.url, "llm__model": "fake-llm", "llm__timeout_s": 5}


def plant_user(svc: Services, user: str, count: bool = True) -> None:
    """Six observations over three subjects, counted as unreflected."""
    texts = ["用户练吉他。", "用户是工程师。", "用户爱吃火锅。"]
    made = [
        observation(svc, user, f"{texts[i % 3][:-1]}（{user} {i}）。", T0 + timedelta(days=i))
        for i in range(6)
    ]
    plant(svc, made)
    if count:
        UnreflectedCounter(svc.redis, svc.keys).add(user, len(made))


def reflected_users(server: LLMServer) -> Counter[str]:
    """How many reflection calls the server answered for each user."""
    seen: Counter[str] = Counter()
    for body in server.chat_requests():
        if is_reflection(body):
            shown = shown_observations(body)
            seen[shown[0][2].split("（")[1].split(" ")[0]] += 1
    return seen


def insight_count(svc: Services, user: str) -> int:
    return len(everything(svc, user, MemoryKind.INSIGHT))


@pytest.mark.timeout(180)
def test_two_nightly_firings_at_once_reflect_each_user_once(
    settings: Settings, llm_server: LLMServer, tmp_path: Path
) -> None:
    """reflect_nightly sent twice concurrently: one fan-out, one reflection call per user."""
    create_app(settings)
    with (
        Cluster(settings, tmp_path / "procs", cluster_env(llm_server)) as cluster,
        MemoryClient(settings) as client,
    ):
        svc = client.services
        for user in USERS:
            plant_user(svc, user)
        cluster.worker(concurrency=2)
        threads = [threading.Thread(target=reflect_nightly.apply_async) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counter = UnreflectedCounter(svc.redis, svc.keys)
        wait_until(
            lambda: all(insight_count(svc, u) == 3 and counter.count(u) == 0 for u in USERS),
            120,
            "every user to be reflected",
            interval=0.3,
        )
        cluster.worker("worker-2", concurrency=1)  # a late firing finds nothing to do
        reflect_nightly.apply_async()
        wait_until(lambda: "reflect_nightly_already_ran" in cluster.logs(), 60, "2nd run")
        assert reflected_users(llm_server) == {u: 1 for u in USERS}
        assert all(insight_count(svc, u) == 3 for u in USERS)


@pytest.mark.timeout(180)
def test_early_trigger_and_the_cli(
    settings: Settings, llm_server: LLMServer, tmp_path: Path
) -> None:
    """Past early_threshold a user is reflected at once; `memlane reflect --wait` reports."""
    create_app(settings)
    with (
        Cluster(settings, tmp_path / "procs", cluster_env(llm_server)) as cluster,
        MemoryClient(settings) as client,
    ):
        svc = client.services
        plant_user(svc, "early", count=False)
        cluster.worker(concurrency=1)
        early = EarlyReflection(
            UnreflectedCounter(svc.redis, svc.keys),
            settings.reflection.early_threshold,
            lambda user: reflect.apply_async((user,), queue=QUEUE_REFLECT),
        )
        assert not note_observations(early, "early", 2)  # under the threshold
        assert note_observations(early, "early", 4)
        assert not note_observations(early, "early", 1)  # already on its way
        wait_until(lambda: insight_count(svc, "early") == 3, 90, "early reflection")

        plant_user(svc, "by-cli")
        run = cluster.run("reflect", "by-cli", "--wait", "--timeout", "90")
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout.split("\n", 1)[1])
        assert report["observations"] == 6 and len(report["written"]) == 3
        run = cluster.run("maintain", "by-cli", "--wait", "--timeout", "90")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout.split("\n", 1)[1])["memories"] == 6
        assert reflected_users(llm_server) == {"early": 1, "by-cli": 1}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_beats_firing_the_nightly_cron_reflect_each_user_once(
    settings: Settings, llm_server: LLMServer, tmp_path: Path
) -> None:
    """Two beat processes with the nightly cron set to the coming minute: one reflection each."""
    now = datetime.now(settings.tz)
    fire = (now + timedelta(minutes=2 if now.second > 45 else 1)).replace(second=0)
    cron = {"reflection__cron_hour": fire.hour, "reflection__cron_minute": fire.minute}
    with (
        Cluster(settings, tmp_path / "procs", {**cluster_env(llm_server), **cron}) as cluster,
        MemoryClient(settings) as client,
    ):
        svc = client.services
        for user in USERS:
            plant_user(svc, user)
        cluster.worker(concurrency=2)
        cluster.beat("beat-a")
        cluster.beat("beat-b")
        counter = UnreflectedCounter(svc.redis, svc.keys)
        wait_until(
            lambda: all(insight_count(svc, u) == 3 and counter.count(u) == 0 for u in USERS),
            200,
            "the nightly cron to reflect every user",
            interval=0.5,
        )
        wait_until(
            lambda: (
                cluster.logs().count("reflect_nightly_already_ran")
                + cluster.logs().count("reflect_nightly_started")
                >= 2
            ),
            60,
            "both beats' firings to be handled",
        )
        assert cluster.logs().count("reflect_nightly_started") == 1
        assert reflected_users(llm_server) == {u: 1 for u in USERS}
