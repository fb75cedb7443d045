"""``memlane up`` serves the HTTP API on 127.0.0.1 behind its generated admin key, and the Node
bot of docs/http.md (``docs/examples/bot.mjs``) runs against it end to end."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.up_proc import running_up
from tests.support.worker_proc import ROOT

BOT = ROOT / "docs" / "examples" / "bot.mjs"
DOC = ROOT / "docs" / "http.md"


def test_the_doc_shows_the_bot_script_verbatim() -> None:
    """docs/http.md shows docs/examples/bot.mjs unchanged: the tested script is the one shown."""
    blocks = re.findall(r"```js\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert BOT.read_text(encoding="utf-8") in blocks


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_memlane_up_serves_the_api_and_the_node_bot_works_end_to_end(tmp_path: Path) -> None:
    """The key file is 0600; no key is 401; the bot pushes, flushes and finds its memory."""
    node = shutil.which("node")
    assert node is not None, "Node is needed for the non-Python example"
    data = tmp_path / "data"
    with running_up(data, tmp_path / "up.log") as up:
        api = up.api_url
        key_file = data / "api_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert httpx.get(f"{api}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{api}/v1/users/alice/pending", timeout=10).status_code == 401
        bot_env = {
            "PATH": os.environ["PATH"],
            "MEMLANE_URL": api,
            "MEMLANE_API_KEY": key_file.read_text().strip(),
            "MEMLANE_USER": "node bot/ü",
        }
        out = subprocess.run(
            [node, str(BOT)], env=bot_env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[:2] == ["pushed 2 turns", "consolidated: true"], out.stdout
        assert "My hobby is playing the guitar." in lines[2], out.stdout
