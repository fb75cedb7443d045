"""Redis keys: one Keys method per key, and the strings that existed before keep their values."""

from __future__ import annotations

import inspect

from memlane import constants
from memlane.buffer.keys import Keys

K = Keys("p")


def test_markers_keep_the_strings_earlier_versions_wrote() -> None:
    """A night claimed, a wave handed out or an early reflection marked before an upgrade counts."""
    assert K.night_claim("reflect", "2024-10-26") == "p:schedlock:reflect:2024-10-26"
    assert K.night_users("maintain", "2024-10-26") == "p:schedlock:maintain:2024-10-26:users"
    assert K.night_wave("reflect", "2024-10-26", 50) == "p:schedlock:reflect:2024-10-26:wave:50"
    assert K.early_reflection("u1") == "p:schedlock:reflect-early:u1"


def test_the_task_status_record_has_a_key_of_its_own() -> None:
    """The status record is not a schedule marker: its own key, distinct per task id."""
    assert K.task_status("cli-1") == "p:taskstatus:cli-1"
    assert K.task_status("cli-1") != K.task_status("cli-2")


def test_every_key_template_has_exactly_one_keys_method() -> None:
    """Each KEY_* template of memlane.constants is formatted by one Keys member, and only there."""
    templates = {n for n in vars(constants) if n.startswith("KEY_")}
    source = inspect.getsource(Keys)
    used = {n for n in templates if f"c.{n}." in source}
    assert used == templates
    assert all(source.count(f"c.{n}.") == 1 for n in templates)


def test_per_user_keys_keep_users_apart() -> None:
    """Two users, even with separator characters in their ids, never share a key."""
    users = ["a", "a:b", "a}b", "{a}"]
    for method in (K.stream, K.turn_ids, K.lease, K.tombstone, K.writes, K.early_reflection):
        assert len({method(u) for u in users}) == len(users)
