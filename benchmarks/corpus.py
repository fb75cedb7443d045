"""A synthetic but realistic memory corpus, and the stores the benchmarks load it into.

Texts are short zh and en memories made from templates (preferences, family, work, trips,
events). To keep the time down, about 2,000 distinct texts are embedded once with the local
model (as passages) and every memory reuses one of those vectors plus a little Gaussian noise
(cosine ~0.99 to its source), so neighbourhoods look like real embeddings rather than random
points. Everything is seeded: memory ``i`` is the same in every run, so a store loaded to 10,000
memories can be topped up to 100,000 and reused by another benchmark.

Memory ``i`` belongs to user ``i // per_user``; ``per_user = n / users`` for the largest corpus
asked for, so a smaller prefix of the corpus has fewer users with the same number of memories
each (the corpus grows in users, as a real service does).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from memlane.config import Settings, load_settings
from memlane.llm.embeddings import CachingEmbedder, build_embedder
from memlane.models import Memory, MemoryKind, TimeGranularity
from memlane.store import build_store
from memlane.store.base import MemoryStore

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "memlane-bench"
NOISE_STD = 0.008  # per dimension; the noise vector has norm ~0.16 before re-normalising
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

_NAMES_EN = ["Alice", "Ben", "Chloe", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack"]
_NAMES_ZH = ["小王", "小李", "阿明", "小红", "老张", "晓雯", "子涵", "浩然", "思琪", "俊杰"]
_REL_EN = ["sister", "brother", "mother", "father", "best friend", "colleague", "son", "daughter"]
_REL_ZH = ["姐姐", "哥哥", "妈妈", "爸爸", "好朋友", "同事", "儿子", "女儿"]
_FOOD_EN = [
    "sushi",
    "spicy noodles",
    "dumplings",
    "pizza",
    "hotpot",
    "green tea",
    "dark coffee",
    "vegan curry",
    "cheesecake",
    "grilled fish",
]
_FOOD_ZH = [
    "火锅",
    "小笼包",
    "寿司",
    "麻辣烫",
    "绿茶",
    "黑咖啡",
    "红烧肉",
    "芒果冰淇淋",
    "饺子",
    "烤鱼",
]
_CITY_EN = [
    "Hangzhou",
    "Tokyo",
    "Paris",
    "Chengdu",
    "Berlin",
    "Singapore",
    "Lisbon",
    "Seoul",
    "Kyoto",
    "Vancouver",
]
_CITY_ZH = ["杭州", "成都", "东京", "巴黎", "西安", "厦门", "大理", "青岛", "重庆", "首尔"]
_JOB_EN = [
    "nurse",
    "software engineer",
    "teacher",
    "photographer",
    "accountant",
    "chef",
    "designer",
    "lawyer",
]
_JOB_ZH = ["护士", "程序员", "老师", "摄影师", "会计", "厨师", "设计师", "律师"]
_HOBBY_EN = [
    "guitar",
    "rock climbing",
    "painting",
    "chess",
    "running",
    "baking",
    "yoga",
    "photography",
    "swimming",
    "calligraphy",
]
_HOBBY_ZH = ["吉他", "攀岩", "画画", "下棋", "跑步", "烘焙", "瑜伽", "摄影", "游泳", "书法"]
_MONTH_EN = ["January", "March", "May", "June", "August", "October", "December"]
_MONTH_ZH = ["一月", "三月", "五月", "六月", "八月", "十月", "十二月"]
_PET_EN = ["cat", "dog", "parrot", "rabbit", "hamster"]
_PET_ZH = ["猫", "狗", "鹦鹉", "兔子", "仓鼠"]

_TEMPLATES_EN = [
    "User loves {food} but dislikes {food2}.",
    "User's {rel} {name} works as a {job} in {city}.",
    "User is planning a trip to {city} in {month}.",
    "User started learning {hobby} with {name} last {month}.",
    "User has a {pet} called {name}.",
    "User went to {city} with their {rel} and tried {food}.",
    "User works as a {job} and practises {hobby} on weekends.",
    "User's {rel} moved to {city} in {month}.",
    "User felt stressed about a {job} interview in {city}.",
    "User celebrated {name}'s birthday with {food} in {month}.",
]
_TEMPLATES_ZH = [
    "用户喜欢{food}，不太喜欢{food2}。",
    "用户的{rel}{name}在{city}当{job}。",
    "用户计划{month}去{city}旅行。",
    "用户{month}开始和{name}一起学{hobby}。",
    "用户养了一只{pet}，名叫{name}。",
    "用户和{rel}去了{city}，吃了{food}。",
    "用户是一名{job}，周末喜欢{hobby}。",
    "用户的{rel}{month}搬到了{city}。",
    "用户在{city}参加{job}面试，感到很紧张。",
    "用户在{month}用{food}给{name}过生日。",
]
_QUERY_EN = [
    "What food does {name} like, maybe {food}?",
    "Where does my {rel} work, is it {city}?",
    "When am I going to {city}?",
    "Who taught me {hobby} in {month}?",
    "What is my {pet}'s name?",
    "Did I eat {food} in {city} with my {rel}?",
    "What did I do about the {job} interview?",
    "Tell me about {name} and {hobby}",
]
_QUERY_ZH = [
    "我喜欢吃什么？{food}吗？",
    "我{rel}在{city}做什么工作？",
    "我什么时候去{city}？",
    "我{month}跟谁学的{hobby}？",
    "我的{pet}叫什么名字？",
    "我和{rel}在{city}吃了{food}吗？",
    "{job}面试那次怎么样了？",
    "{name}喜欢{hobby}吗？",
]


def _fill(template: str, lang: str, rng: random.Random) -> str:
    en = lang == "en"

    def pick(en_list: list[str], zh_list: list[str]) -> str:
        return rng.choice(en_list if en else zh_list)

    food = pick(_FOOD_EN, _FOOD_ZH)
    food2 = pick(_FOOD_EN, _FOOD_ZH)
    return template.format(
        name=pick(_NAMES_EN, _NAMES_ZH),
        rel=pick(_REL_EN, _REL_ZH),
        food=food,
        food2=food2 if food2 != food else pick(_FOOD_EN, _FOOD_ZH),
        city=pick(_CITY_EN, _CITY_ZH),
        job=pick(_JOB_EN, _JOB_ZH),
        hobby=pick(_HOBBY_EN, _HOBBY_ZH),
        month=pick(_MONTH_EN, _MONTH_ZH),
        pet=pick(_PET_EN, _PET_ZH),
    )


def _distinct(templates: dict[str, list[str]], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: dict[str, None] = {}
    langs = list(templates)
    tries = 0
    while len(out) < count and tries < count * 50:
        lang = langs[len(out) % len(langs)]
        out.setdefault(_fill(rng.choice(templates[lang]), lang, rng), None)
        tries += 1
    if len(out) < count:
        raise ValueError(f"asked for {count} distinct texts; the templates give only {len(out)}")
    return list(out)


def memory_texts(count: int = 2000, seed: int = 7) -> list[str]:
    """``count`` distinct short memory texts, half zh and half en."""
    return _distinct({"en": _TEMPLATES_EN, "zh": _TEMPLATES_ZH}, count, seed)


def query_texts(count: int, seed: int = 11) -> list[str]:
    """``count`` distinct query texts (zh and en), so a query-vector LRU never hits."""
    return _distinct({"en": _QUERY_EN, "zh": _QUERY_ZH}, count, seed)


# LoCoMo dates carry no zone: read them in the zone the recorded figures and the guard's
# baseline were measured in, not in the machine's (the settings' default).
BENCH_TIMEZONE = "Asia/Shanghai"


def bench_settings(
    backend: str,
    workdir: Path,
    es_url: str | None = None,
    es_index: str = "memlane-bench",
    **overrides: Any,
) -> Settings:
    """Settings for a benchmark store, independent of the caller's environment."""
    store: dict[str, Any] = {"backend": backend}
    if backend == "sqlite":
        store["sqlite_path"] = str(workdir / f"{es_index}.sqlite3")
    else:
        if not es_url:
            raise SystemExit("--es-url is required for the elasticsearch backend")
        store.update(es_url=es_url, es_index=es_index, es_timeout_s=120.0)
    return load_settings(
        environ={},
        data_dir=str(workdir / "data"),
        store=store,
        log={"level": "WARNING"},
        **{"timezone": BENCH_TIMEZONE, **overrides},
    )


def open_store(settings: Settings) -> MemoryStore:
    """The configured store with its schema ensured."""
    store = build_store(settings)
    store.ensure_schema()
    return store


def drop_store(settings: Settings) -> None:
    """Delete a benchmark store (SQLite file or Elasticsearch indices behind the alias)."""
    if settings.store.backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(settings.sqlite_file) + suffix).unlink(missing_ok=True)
        return
    from elasticsearch import Elasticsearch

    client = Elasticsearch(settings.store.es_url, request_timeout=120)
    try:
        name = settings.store.es_index
        if client.indices.exists_alias(name=name):
            for index in client.indices.get_alias(name=name):
                client.indices.delete(index=index)
        if client.indices.exists(index=f"{name}*"):
            client.indices.delete(index=f"{name}*")
    finally:
        client.close()


def total_count(store: MemoryStore) -> int:
    """How many memories a benchmark store holds in all (any user)."""
    client = getattr(store, "client", None)
    if client is not None:  # Elasticsearch
        alias = store.alias  # type: ignore[attr-defined]
        client.indices.refresh(index=alias)
        return int(client.count(index=alias)["count"])
    conn = store._conn()  # type: ignore[attr-defined]
    return int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])


@dataclass
class Corpus:
    """The deterministic synthetic corpus: ``n`` memories over ``users`` users."""

    n: int
    users: int
    seed: int = 42
    texts: list[str] | None = None
    base: np.ndarray | None = None

    @property
    def per_user(self) -> int:
        """Memories per user."""
        return max(1, self.n // self.users)

    def user_of(self, i: int) -> str:
        """The user memory ``i`` belongs to."""
        return f"u{i // self.per_user:05d}"

    def users_in(self, count: int) -> list[str]:
        """The users of the first ``count`` memories."""
        return [f"u{j:05d}" for j in range((count - 1) // self.per_user + 1)]

    def prepare(self, embedder: CachingEmbedder, cache_dir: Path) -> None:
        """Embed the distinct texts once (cached on disk under ``cache_dir``)."""
        self.texts = memory_texts()
        cache = cache_dir / f"base-vectors-{len(self.texts)}.npy"
        meta = cache_dir / f"base-vectors-{len(self.texts)}.json"
        if cache.exists() and meta.exists() and json.loads(meta.read_text()) == self.texts:
            self.base = np.load(cache)
            return
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.base = np.asarray(embedder.embed_passages(self.texts), dtype=np.float32)
        np.save(cache, self.base)
        meta.write_text(json.dumps(self.texts, ensure_ascii=False))

    def memories(self, start: int, stop: int) -> list[Memory]:
        """Memories ``start..stop-1`` (deterministic)."""
        assert self.texts is not None and self.base is not None, "call prepare() first"
        rng = np.random.default_rng([self.seed, start, stop])
        idx = rng.integers(0, len(self.texts), size=stop - start)
        vecs = self.base[idx] + rng.normal(0, NOISE_STD, size=(stop - start, self.base.shape[1]))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        secs = rng.integers(0, 365 * 86400, size=stop - start)
        kinds = rng.random(stop - start)
        importance = rng.uniform(0.3, 0.9, size=stop - start)
        out = []
        now = datetime.now(UTC)
        for j, i in enumerate(range(start, stop)):
            recorded = EPOCH + timedelta(seconds=int(secs[j]))
            kind = MemoryKind.OBSERVATION if kinds[j] < 0.7 else MemoryKind.RAW
            event = recorded - timedelta(days=int(secs[j]) % 30) if kinds[j] < 0.3 else None
            out.append(
                Memory(
                    id=f"m{i:07d}",
                    user_id=self.user_of(i),
                    kind=kind,
                    content=self.texts[int(idx[j])],
                    recorded_at=recorded,
                    embedding=vecs[j].astype(np.float32).tolist(),
                    event_time=event,
                    time_granularity=TimeGranularity.DAY if event else None,
                    created_at=now,
                    updated_at=now,
                    importance=round(float(importance[j]), 2),
                    language="en"
                    if any(c.isascii() and c.isalpha() for c in self.texts[int(idx[j])][:4])
                    else "zh",
                )
            )
        return out

    def load(self, store: MemoryStore, start: int, stop: int, chunk: int) -> float:
        """Upsert memories ``start..stop-1`` in chunks; returns the seconds spent in upsert."""
        spent = 0.0
        for lo in range(start, stop, chunk):
            batch = self.memories(lo, min(stop, lo + chunk))
            t0 = time.perf_counter()
            store.upsert(batch)
            spent += time.perf_counter() - t0
        return spent


def chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of ``size``."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def embedder_for(settings: Settings) -> CachingEmbedder:
    """The local embedder the settings describe."""
    return build_embedder(settings.embedding)


class DiskCachedEmbedder:
    """An embedder that remembers every vector in a file, so reruns skip the model.

    Vectors are deterministic for a given model and text, so the recall benchmark can reuse
    them between runs (``--no-embed-cache`` turns this off). Queries and passages are kept
    apart (they carry different e5 prefixes).
    """

    def __init__(self, inner: CachingEmbedder, path: Path) -> None:
        self.inner = inner
        self.dims = inner.dims
        self.path = path
        self._data: dict[str, list[float]] = {}
        if path.exists():
            self._data = json.loads(path.read_text(encoding="utf-8"))
        self._dirty = False

    def embed_passages(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if "p:" + t not in self._data]
        if missing:
            for text, vec in zip(missing, self.inner.embed_passages(missing), strict=True):
                self._data["p:" + text] = [round(float(x), 6) for x in vec]
            self._dirty = True
        return [self._data["p:" + t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        key = "q:" + text
        if key not in self._data:
            self._data[key] = [round(float(x), 6) for x in self.inner.embed_query(text)]
            self._dirty = True
        return self._data[key]

    def save(self) -> None:
        if self._dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data), encoding="utf-8")
            tmp.replace(self.path)
            self._dirty = False
