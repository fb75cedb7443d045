"""``memlane chat --user U``: an interactive chat with memory in the terminal.

Each line you type goes through :class:`memlane.memory_chat.MemoryChat`; the reply is printed
with the memories it used. ``/memories`` shows what was recalled for the last message, ``/quit``
(or end of input) leaves. Consolidation happens in the workers (``memlane up``); until then
recent turns are still recalled from the buffer. Everything printed goes through
:func:`worker.terminal.safe`: configured secrets masked (a provider's error may echo the key),
escape sequences from replies and memories shown, not obeyed.
"""

from __future__ import annotations

from collections.abc import Callable

from memlane.buffer.usage import UsageRecorder
from memlane.client import MemoryClient
from memlane.config import Settings
from memlane.errors import LLMError
from memlane.llm.chat import ChatModel
from memlane.memory_chat import ChatReply, MemoryChat
from memlane.redaction import Redactor
from memlane.retrieval.context import format_context
from memlane.text.tokens import detect_language
from worker.terminal import safe

PROMPT = "you> "
HELP = "type a message; /memories shows what was recalled, /quit leaves"


def run_repl(
    settings: Settings,
    user_id: str,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> int:
    """Run the chat loop until ``/quit`` or end of input; returns the exit code."""
    out = _safe_writer(write, Redactor.from_settings(settings))
    if not settings.llm.configured:
        out("memlane chat: no LLM configured (set MEMLANE_LLM__BASE_URL / MEMLANE_LLM__API_KEY)")
        return 2
    client = MemoryClient(settings)
    model = ChatModel(settings.llm, retries=settings.llm.max_retries)
    chat = MemoryChat(client, model, UsageRecorder(client.services.redis, client.services.keys))
    out(f"memlane chat as {user_id!r} with {settings.llm.model}; {HELP}")
    try:
        _loop(chat, user_id, settings, read, out)
    finally:
        model.close()
        client.close()
    return 0


def _safe_writer(write: Callable[[str], None], redactor: Redactor) -> Callable[[str], None]:
    """``write`` behind :func:`worker.terminal.safe`: secrets masked, escapes shown."""

    def out(text: str) -> None:
        write(safe(text, redactor, keep_newlines=True))

    return out


def _loop(
    chat: MemoryChat,
    user_id: str,
    settings: Settings,
    read: Callable[[str], str],
    write: Callable[[str], None],
) -> None:
    last: ChatReply | None = None
    while True:
        try:
            line = read(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            write("")
            return
        if line in {"/quit", "/exit"}:
            return
        if line == "/memories":
            write(_memory_lines(last, settings) if last else "(nothing recalled yet)")
            continue
        if not line:
            continue
        try:
            last = chat.chat(user_id, line, session_id="repl")
        except LLMError as e:
            write(f"(the chat model failed: {e})")
            continue
        write(f"bot> {last.reply}")
        if last.memories:
            write(f"     ({len(last.memories)} memories used; /memories to see them)")


def _memory_lines(reply: ChatReply, settings: Settings) -> str:
    language = detect_language(reply.reply)
    lines = format_context(reply.memories, language, settings.tz)
    marks = [" (pending)" if r.pending else "" for r in reply.memories]
    return "\n".join(f"  {line}{mark}" for line, mark in zip(lines, marks, strict=True))
