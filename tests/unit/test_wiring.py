"""The wiring: attached to the Celery app explicitly, one chat model per process, no globals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from celery import Celery

from memlane.config import Settings, load_settings
from memlane.constants import TASK_REFLECT
from memlane.errors import ConfigError, LLMNotConfigured
from pipelines.wiring import Wiring
from tasks.app import wiring_of
from worker.app import create_app


def settings(tmp_path: Path, llm: bool) -> Settings:
    """Settings that never connect anywhere in these tests (nothing is called)."""
    extra = {"llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}} if llm else {}
    return load_settings(
        environ={},
        data_dir=str(tmp_path),
        redis={"url": "redis://127.0.0.1:9/0"},
        **extra,
    )


def test_an_app_without_wiring_is_a_setup_error() -> None:
    """A task under an app that create_app did not build raises, instead of building itself."""
    with pytest.raises(ConfigError, match="create_app"):
        wiring_of(Celery("bare", set_as_current=False))


def test_create_app_attaches_a_wiring_built_from_its_settings(tmp_path: Path) -> None:
    """The app carries the wiring of exactly the settings it was made from."""
    s = settings(tmp_path, llm=False)
    app = create_app(s)
    wiring = wiring_of(app)
    assert wiring.settings is s and wiring.services.settings is s
    assert wiring.worker_id.split(":")[1] == str(os.getpid())


def test_raw_mode_has_no_models_and_reflection_refuses(tmp_path: Path) -> None:
    """No chat model, no extractor, no early trigger; reflection ports raise LLMNotConfigured."""
    with Wiring(settings(tmp_path, llm=False)) as wiring:
        assert wiring.chat_model() is None and wiring.extractor() is None
        assert wiring.early_reflection(lambda user: None) is None
        with pytest.raises(LLMNotConfigured):
            wiring.reflection_ports()


def test_one_chat_model_per_process_and_a_fork_gets_its_own(tmp_path: Path) -> None:
    """Reflection, maintenance and extraction share the process's model; a child builds anew."""
    with Wiring(settings(tmp_path, llm=True)) as wiring:
        model = wiring.chat_model()
        assert model is not None and wiring.chat_model() is model
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a model of its own, not the parent's
            child = wiring.chat_model()
            os.write(write, b"own" if child is not None and child is not model else b"shared")
            os._exit(0)
        os.close(write)
        try:
            assert os.read(read, 16) == b"own"
        finally:
            os.close(read)
            os.waitpid(pid, 0)
        assert wiring.chat_model() is model


def test_the_app_takes_its_time_limits_and_the_leases_their_ttl_from_the_budget(
    tmp_path: Path,
) -> None:
    """Celery's soft/hard limits, reflection's own, and the queue lease come from the budget."""
    s = load_settings(
        environ={"MEMLANE_LLM__CALL_BUDGET_S": "300"},
        data_dir=str(tmp_path),
        redis={"url": "redis://127.0.0.1:9/0"},
        llm={"base_url": "http://127.0.0.1:9/v1", "model": "m"},
    )
    t = s.timing
    app = create_app(s)
    assert (app.conf.task_soft_time_limit, app.conf.task_time_limit) == (
        t.soft_time_limit_s,
        t.time_limit_s,
    )
    assert t.soft_time_limit_s > 2 * 300
    reflect = app.conf.task_annotations[TASK_REFLECT]
    assert reflect == {
        "soft_time_limit": t.reflect_soft_time_limit_s,
        "time_limit": t.reflect_time_limit_s,
    }
    with Wiring(s) as wiring:
        chat = wiring.chat_model()
        assert chat is not None and chat._client.timeout == 300
        assert wiring.services.leases._ttl_ms == int(t.lease_ttl_s * 1000)
