"""The chat model: any OpenAI-compatible ``/chat/completions`` endpoint through the ``openai`` SDK.

Works with OpenAI, DashScope (compatible mode), SiliconFlow, DeepSeek, vLLM and Ollama: only
``base_url``, ``model`` and the key (from the environment) differ. Provider errors are mapped
onto memlane's hierarchy so callers decide on retries by type alone:

- 429 -> :class:`LLMRateLimited` (Retryable);
- timeouts, connection errors, 408 and 5xx -> :class:`LLMUnavailable` (Retryable);
- any other 4xx -> :class:`LLMError`;
- output that is not a JSON object, even after tolerant parsing -> :class:`LLMBadOutput`.

The SDK's own retries are off (``max_retries=0``); :class:`ChatModel` retries transient errors
itself only when asked to (``retries``), because consolidation already retries at task level.
Every request goes through a :class:`~memlane.llm.limits.ProviderGate`: the shared rpm/tpm
window (``llm.rpm``, ``llm.tpm``), and a 429's ``Retry-After`` slept off within the call budget.

JSON completions ask for the best structured output the provider takes and step down by
themselves when it refuses one (:mod:`memlane.llm.formats` holds the rule and the memory).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memlane.backoff import backoff_delay
from memlane.config_sections import LLMSettings
from memlane.errors import LLMBadOutput, LLMError, LLMRateLimited, LLMUnavailable, Retryable
from memlane.llm.formats import (
    ORDER,
    FormatMemory,
    OutputFormat,
    Refusal,
    next_format,
    provider_id,
    refusal,
    response_format,
)
from memlane.llm.limits import (
    ProviderGate,
    ProviderLimiter,
    RateLimits,
    estimate_chat_tokens,
    parse_retry_after,
)
from memlane.logging import get_logger
from memlane.metrics import count_llm_call, count_llm_error

log = get_logger(__name__)

Message = dict[str, str]
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one call, as the provider reported it."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model reply, tolerating fences, reasoning blocks and chatter (pure).

    Strips ``<think>...</think>``, prefers the content of a fenced block, then takes the outermost
    ``{...}``. Raises :class:`LLMBadOutput` when no JSON object can be read.
    """
    body = _THINK.sub("", text or "").strip()
    fenced = _FENCE.search(body)
    if fenced:
        body = fenced.group(1).strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise LLMBadOutput(f"no JSON object in model output: {_preview(text)}")
    try:
        value = json.loads(body[start : end + 1])
    except json.JSONDecodeError as e:
        raise LLMBadOutput(f"malformed JSON in model output ({e.msg}): {_preview(text)}") from e
    if not isinstance(value, dict):
        raise LLMBadOutput("model output is not a JSON object")
    return value


def _preview(text: str | None, size: int = 120) -> str:
    flat = " ".join((text or "").split())
    return repr(flat[:size] + ("..." if len(flat) > size else ""))


def map_api_error(err: Exception) -> LLMError:
    """The memlane error for an ``openai`` SDK exception (pure)."""
    import openai

    if isinstance(err, openai.RateLimitError):
        return LLMRateLimited(
            f"chat model rate limited (429): {_api_message(err)}", retry_after_s(err)
        )
    if isinstance(err, openai.APITimeoutError | openai.APIConnectionError):
        return LLMUnavailable(f"chat model unreachable: {type(err).__name__}")
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        if status >= 500 or status == 408:
            return LLMUnavailable(f"chat model failed ({status}): {_api_message(err)}")
        return LLMError(f"chat request refused ({status}): {_api_message(err)}")
    if isinstance(err, openai.APIResponseValidationError):
        return LLMBadOutput(f"chat response not understood: {err}")
    return LLMError(f"chat call failed: {type(err).__name__}")


def retry_after_s(err: Any) -> float | None:
    """The ``Retry-After`` of an SDK error's HTTP response, in seconds (None if absent)."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    return parse_retry_after(dict(headers)) if headers is not None else None


def _api_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])[:200]
    return str(getattr(err, "message", "") or "")[:200]


class _Refused(Exception):
    """A structured call's error that is (or may be) a refusal of its format; never escapes."""

    def __init__(self, error: LLMError, kind: Refusal) -> None:
        super().__init__(str(error))
        self.error = error
        self.kind = kind


class ChatModel:
    """An OpenAI-compatible chat model: JSON completions for pipelines, text for chat.

    ``schemas`` maps a JSON completion's ``schema_name`` to the JSON schema of its output (sent
    as ``json_schema``; a name without one starts at ``json_object``). ``formats`` shares the
    format learned for this provider with other processes (Redis in a worker); the model also
    remembers it itself for ``llm.response_format_ttl_s``.
    """

    def __init__(
        self,
        settings: LLMSettings,
        retries: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        schemas: Mapping[str, dict[str, Any]] | None = None,
        formats: FormatMemory | None = None,
        limiter: ProviderLimiter | None = None,
    ) -> None:
        from openai import OpenAI

        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        self.settings = settings
        self.model = settings.model
        self.provider = provider_id(settings.base_url, settings.model)
        self._retries = retries
        self._sleep = sleep
        self._schemas = dict(schemas or {})
        self._formats = formats
        self._learned: tuple[OutputFormat, float] | None = None
        self._client = OpenAI(
            base_url=settings.base_url,
            api_key=key,
            timeout=settings.request_timeout_s,
            max_retries=0,  # retries and Retry-After are ours (llm.limits): no double wait
        )
        self._gate = ProviderGate(
            f"chat|{self.provider}",
            RateLimits(settings.rpm or 0, settings.tpm or 0, settings.limit_window_s),
            limiter,
            # The whole call, waits included, fits the LLM timeout: memlane.timing counts calls
            # at it (it is llm.call_budget_s unless llm.timeout_s is set lower).
            settings.request_timeout_s,
            settings.request_timeout_s,
            sleep=sleep,
        )

    def complete_json(
        self, messages: Sequence[Message], schema_name: str
    ) -> tuple[dict[str, Any], Usage]:
        """One completion parsed as a JSON object, in the best format the provider takes."""
        text, usage = self._complete(lambda: self._structured(messages, schema_name), schema_name)
        return parse_json_object(text), usage

    def output_format(self, schema_name: str) -> OutputFormat:
        """The format the next ``schema_name`` completion is asked in first."""
        best = self.settings.first_format
        known = self._known_format()
        if known is not None and ORDER.index(known) > ORDER.index(best):
            best = known
        if best is OutputFormat.JSON_SCHEMA and schema_name not in self._schemas:
            best = OutputFormat.JSON_OBJECT
        return best

    def complete_text(
        self, messages: Sequence[Message], purpose: str = "chat"
    ) -> tuple[str, Usage]:
        """One plain-text completion."""
        text, usage = self._complete(lambda: self._call_once(messages, purpose), purpose)
        if not text.strip():
            raise LLMBadOutput("chat model returned an empty reply")
        return _THINK.sub("", text).strip(), usage

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _complete(self, call: Callable[[], tuple[str, Usage]], purpose: str) -> tuple[str, Usage]:
        attempt = 0
        while True:
            try:
                return call()
            except Retryable as e:
                if attempt >= self._retries:
                    raise
                # A provider's Retry-After replaces the backoff (never both: no double wait).
                delay = getattr(e, "retry_after_s", None) or backoff_delay(attempt, 1.0, 30.0)
                log.warning("llm_retry", purpose=purpose, error=str(e), delay_s=round(delay, 2))
                self._sleep(delay)
                attempt += 1

    def _structured(self, messages: Sequence[Message], name: str) -> tuple[str, Usage]:
        """One JSON completion, stepping down the formats on a refusal (see llm.formats)."""
        start = fmt = self.output_format(name)
        suspect: _Refused | None = None  # an unnamed 400/422 waiting for the next format's word
        while True:
            try:
                result = self._call_once(messages, name, fmt)
            except _Refused as r:
                if suspect is not None and r.kind is not Refusal.NAMED:
                    raise suspect.error from suspect.__cause__  # not the format after all
                suspect = r if r.kind is Refusal.SUSPECTED else suspect
                fmt = next_format(fmt) or OutputFormat.TEXT  # text is never refused
                log.warning("llm_format_refused", model=self.model, next=fmt.value, error=str(r))
                continue
            except LLMError as e:
                if suspect is not None and not isinstance(e, Retryable):
                    raise suspect.error from suspect.__cause__
                raise
            if fmt is not start:
                self._learn(fmt)
            return result

    def _known_format(self) -> OutputFormat | None:
        """The format learned for this provider: this process's, else the shared one."""
        ttl = self.settings.response_format_ttl_s
        if self._learned is not None and time.monotonic() - self._learned[1] < ttl:
            return self._learned[0]
        shared = self._formats.get(self.provider) if self._formats is not None else None
        if shared is not None:
            self._learned = (shared, time.monotonic())
        return shared

    def _learn(self, fmt: OutputFormat) -> None:
        self._learned = (fmt, time.monotonic())
        if self._formats is not None:
            self._formats.remember(self.provider, fmt)
        log.warning("llm_format_learned", model=self.model, provider=self.provider, format=fmt)

    def _call_once(
        self, messages: Sequence[Message], purpose: str, fmt: OutputFormat = OutputFormat.TEXT
    ) -> tuple[str, Usage]:
        import openai

        extra: dict[str, Any] = {}
        field = response_format(fmt, purpose, self._schemas.get(purpose))
        if field is not None:
            extra["response_format"] = field
        started = time.monotonic()

        def send(timeout_s: float) -> Any:
            try:
                return self._client.chat.completions.create(
                    model=self.model,
                    messages=list(messages),  # type: ignore[arg-type]
                    temperature=self.settings.temperature,
                    timeout=timeout_s,
                    **extra,
                )
            except openai.RateLimitError as e:  # the gate sleeps off its Retry-After
                raise map_api_error(e) from e

        estimate = estimate_chat_tokens([str(m.get("content", "")) for m in messages])
        try:
            resp = self._gate.call(send, estimate, _total_tokens)
        except LLMRateLimited as e:
            log.warning("llm_call_failed", purpose=purpose, model=self.model, error=str(e))
            raise
        except openai.OpenAIError as e:
            err = map_api_error(e)
            log.warning("llm_call_failed", purpose=purpose, model=self.model, error=str(err))
            count_llm_error(self.model, err)
            kind = refusal(fmt, getattr(e, "status_code", None), _api_message(e))
            if kind is not Refusal.NONE:
                raise _Refused(err, kind) from e
            raise err from e
        usage = _usage_of(resp, self.model, time.monotonic() - started)
        _log_call(purpose, usage)
        if not resp.choices or resp.choices[0].message.content is None:
            raise LLMBadOutput("chat model returned no content")
        return resp.choices[0].message.content, usage


def _total_tokens(resp: Any) -> int | None:
    """The tokens a completion really spent, as reported (None when the provider says nothing)."""
    raw = getattr(resp, "usage", None)
    if raw is None:
        return None
    total = getattr(raw, "total_tokens", None)
    if total is None:
        total = int(getattr(raw, "prompt_tokens", 0) or 0)
        total += int(getattr(raw, "completion_tokens", 0) or 0)
    return int(total)


def _usage_of(resp: Any, model: str, latency_s: float) -> Usage:
    raw = getattr(resp, "usage", None)
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    return Usage(model, prompt, completion, latency_s)


def _log_call(purpose: str, usage: Usage) -> None:
    count_llm_call(
        usage.model, purpose, usage.prompt_tokens, usage.completion_tokens, usage.latency_s
    )
    log.info(
        "llm_call",
        purpose=purpose,
        model=usage.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=round(usage.latency_s * 1000, 1),
    )
