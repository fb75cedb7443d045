"""API keys, stored hashed in Redis, and each key's token bucket: one Lua script per request.

A key is ``mlk_<id>_<secret>``: ``id`` (8 hex characters) names it in ``memlane keys list`` and
``revoke``; ``secret`` is 32 random bytes. Redis keeps only the key's SHA-256. A plain, fast
hash is enough because the key is 256 bits of randomness: nobody can guess or brute-force a
preimage, so a deliberately slow password hash (bcrypt, argon2) would add ~100 ms to every
request and no safety. A leak of Redis gives no usable key.

:meth:`KeyStore.authenticate` runs one script that looks the hash up and takes a token from the
key's bucket (refilled at ``rate`` per second up to ``burst``, on Redis' clock), so every server
process shares the same bucket and a request costs one round trip before its real work.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from memlane.buffer.keys import Keys
from memlane.buffer.lua import AUTHENTICATE, AUTHENTICATE_PUSH
from memlane.errors import InvalidInput, RateLimited, RedisUnavailable, Unauthorized
from service.groupcommit import ScriptBatch
from service.tenancy import Principal, validate_tenant

KEY_PREFIX = "mlk_"
MISSING = "missing API key: send 'Authorization: Bearer <key>'"


def sha1_of(script: str) -> str:
    """The SHA-1 a Lua script is cached under by Redis (for EVALSHA)."""
    return hashlib.sha1(script.encode()).hexdigest()


AUTHENTICATE_SHA = sha1_of(AUTHENTICATE)
AUTHENTICATE_PUSH_SHA = sha1_of(AUTHENTICATE_PUSH)
KNOWN_MAX = 10_000  # key hashes AsyncAuthenticator remembers the tenant of


def key_hash(key: str) -> str:
    """The SHA-256 (hex) a key is stored under."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``memlane keys list`` shows of a key (never the key)."""

    key_id: str
    tenant: str | None
    label: str
    created_at: float
    rate_per_s: float
    burst: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.key_id,
            "tenant": self.tenant,
            "admin": self.tenant is None,
            "label": self.label,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
        }


class KeyStore:
    """Create, list, revoke and check API keys in Redis under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._script = client.register_script(AUTHENTICATE)

    def _record_key(self, digest: str) -> str:
        return Keys(self.prefix).api_key(digest)

    @property
    def _index(self) -> str:
        return Keys(self.prefix).api_keys

    def create(
        self, tenant: str | None, rate_per_s: float, burst: int, label: str = ""
    ) -> tuple[KeyInfo, str]:
        """A new key for ``tenant`` (None: an admin key). Returns its description and the key,
        which is not stored anywhere: show it once."""
        if tenant is not None:
            validate_tenant(tenant)
        if not rate_per_s > 0:
            raise InvalidInput("rate", "must be a positive number of requests per second")
        if burst < 1:
            raise InvalidInput("burst", "must be at least 1")
        key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        digest = key_hash(key)
        info = KeyInfo(key_id, tenant, label, time.time(), float(rate_per_s), int(burst))
        record = {"id": key_id, "tenant": tenant or "", "rate": str(rate_per_s), "burst": burst}
        described = {**info.as_dict(), "created_at": info.created_at, "sha256": digest}
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._record_key(digest), mapping=record)
                pipe.hset(self._index, key_id, json.dumps(described))
                pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot store the API key: {e}") from e
        return info, key

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        try:
            raw = self.redis.hgetall(self._index)
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot list API keys: {e}") from e
        infos = [_info(json.loads(v)) for v in raw.values()]  # type: ignore[union-attr]
        return sorted(infos, key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id; False when there is no such key."""
        try:
            raw = self.redis.hget(self._index, key_id)
            if raw is None:
                return False
            digest = json.loads(raw)["sha256"]  # type: ignore[arg-type]
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._record_key(digest))
                pipe.hdel(self._index, key_id)
                pipe.execute()
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot revoke the API key: {e}") from e
        return True

    def exists(self, key: str) -> bool:
        """Whether ``key`` is a live key (no token taken)."""
        try:
            return bool(self.redis.exists(self._record_key(key_hash(key))))
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot check the API key: {e}") from e

    def identify(self, key: str | None) -> Principal:
        """The caller a key stands for, taking no token (Unauthorized when unknown)."""
        if not key:
            raise Unauthorized("missing API key")
        try:
            found: list[Any] = self.redis.hmget(  # type: ignore[assignment]
                self._record_key(key_hash(key)), ["id", "tenant"]
            )
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot check the API key: {e}") from e
        key_id, tenant = found
        if key_id is None:
            raise Unauthorized("unknown or revoked API key")
        return Principal(_s(key_id), _s(tenant or b"") or None)

    def authenticate(self, key: str | None) -> Principal:
        """The caller a key stands for, after taking one token from its bucket.

        Raises :class:`Unauthorized` (no key, unknown or revoked), :class:`RateLimited`
        (bucket empty) or :class:`RedisUnavailable` (Redis down).
        """
        if not key:
            raise Unauthorized(MISSING)
        try:
            out = self._script(keys=[self._record_key(key_hash(key))])
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot check the API key: {e}") from e
        return principal_of(out)


class AsyncAuthenticator:
    """:meth:`KeyStore.authenticate` on redis-py's asyncio client: the event loop checks the
    key and takes the token itself, so a request costs no thread hop before its real work.

    It also remembers, per key hash, the key id and tenant Redis last answered with
    (:meth:`known`). That is never a decision to let a request in: a key's tenant is fixed for
    the life of its record (revocation deletes the record; no command rewrites it), and the push
    hot path only uses it to name the user's Redis keys before :meth:`authenticate_push` checks
    the key, takes the token and pushes in one atomic script. A revoked key is refused by that
    script on its next request. At most :data:`KNOWN_MAX` hashes are kept, for the process's
    life.
    """

    def __init__(self, connect: Callable[[], Awaitable[redis.asyncio.Redis]], prefix: str) -> None:
        self._connect = connect
        self._client: redis.asyncio.Redis | None = None
        self.prefix = prefix
        self._known: dict[str, Principal] = {}
        # Pushes arriving together share one round trip (service.groupcommit).
        self._pushes = ScriptBatch(self.redis, AUTHENTICATE_PUSH, AUTHENTICATE_PUSH_SHA)

    def known(self, key: str | None) -> Principal | None:
        """Who ``key`` stood for the last time Redis was asked (None: not asked yet)."""
        return self._known.get(key_hash(key)) if key else None

    def _remember(self, digest: str, who: Principal) -> None:
        if len(self._known) >= KNOWN_MAX:
            self._known.clear()
        self._known[digest] = who

    async def authenticate_push(
        self, key: str, expected: Principal, keys: list[str], args: list[Any]
    ) -> Principal | None:
        """Authenticate ``key`` and take a token (as :meth:`authenticate`, same errors), then
        run ``PUSH`` with ``keys`` and ``args``, in one atomic script. Returns the caller, or
        None when the key's tenant is no longer ``expected``'s: the token was taken and nothing
        was pushed."""
        digest = key_hash(key)
        names = [Keys(self.prefix).api_key(digest), *keys]
        argv = [expected.tenant or "", *args]
        try:
            out = await self._pushes.call(names, argv)
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot check the API key and push: {e}") from e
        if out == 1:  # pushed: the key is still the one Redis told us about
            return expected
        if int(out[0]) == 3:
            self._remember(digest, Principal(_s(out[1]), _s(out[2]) or None))
            return None
        if int(out[0]) == 0:
            self._known.pop(digest, None)
        return principal_of(out)

    async def redis(self) -> redis.asyncio.Redis:
        """The asyncio client (connected on first use; raises ``redis.RedisError``)."""
        if self._client is None:
            self._client = await self._connect()
        return self._client

    async def authenticate(self, key: str | None) -> Principal:
        """As :meth:`KeyStore.authenticate` (same errors)."""
        if not key:
            raise Unauthorized(MISSING)
        digest = key_hash(key)
        record = Keys(self.prefix).api_key(digest)
        try:
            client = await self.redis()
            try:
                out = await client.evalsha(AUTHENTICATE_SHA, 1, record)  # type: ignore[misc]
            except redis.exceptions.NoScriptError:
                out = await client.eval(AUTHENTICATE, 1, record)  # type: ignore[misc]
        except redis.RedisError as e:
            raise RedisUnavailable(f"cannot check the API key: {e}") from e
        if int(out[0]) == 0:
            self._known.pop(digest, None)
        who = principal_of(out)
        self._remember(digest, who)
        return who

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()


def principal_of(out: Any) -> Principal:
    """The caller named by the script's answer, or the error it stands for."""
    status = int(out[0])
    if status == 0:
        raise Unauthorized("unknown or revoked API key")
    key_id, tenant = _s(out[1]), _s(out[2]) or None
    if status == 2:
        raise RateLimited(max(1, -(-int(_s(out[3])) // 1000)))
    return Principal(key_id, tenant)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _info(d: dict[str, Any]) -> KeyInfo:
    return KeyInfo(
        d["id"], d["tenant"], d.get("label", ""), d["created_at"], d["rate_per_s"], d["burst"]
    )
