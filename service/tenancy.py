"""Tenants are namespaces of user ids: the one place where an outside id becomes an inside id.

A key belongs to one tenant, or is an admin key. For a tenant key, the user ``alice`` of tenant
``acme`` is stored as ``@acme/alice``: the buffer, the store, the leases and the workers only
ever see that id, so two tenants can both have ``alice`` and no query of one can name the
other's. Tenant names cannot contain ``/``, so the mapping is one-to-one. An admin key works on
the inside ids unchanged (the same ids the Python :class:`memlane.MemoryClient` uses).

Every route calls :meth:`Principal.inside` for the user id it was given and
:meth:`Principal.outside` for every user id it returns; nothing else builds an inside id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memlane.config_sections import LimitSettings
from memlane.errors import InvalidInput
from memlane.validation import validate_user_id

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
TENANT_RULE = (
    "1-32 characters: lowercase letters, digits, '_' and '-', not starting with '_' or '-'"
)
MARK = "@"
SEP = "/"


def validate_tenant(tenant: object) -> str:
    """A tenant name: lowercase letters, digits, ``_`` and ``-`` (no ``/``, no ``@``)."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise InvalidInput("tenant", f"must be {TENANT_RULE}")
    return tenant


def tenant_prefix(tenant: str) -> str:
    """``@acme/``: what every inside id of the tenant starts with."""
    return f"{MARK}{tenant}{SEP}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's id and its tenant (None for an admin key)."""

    key_id: str
    tenant: str | None

    @property
    def admin(self) -> bool:
        """True for an admin key: it sees every user, by inside id."""
        return self.tenant is None

    def inside(self, user_id: object, limits: LimitSettings, field: str = "user_id") -> str:
        """The id the buffer and the store know this caller's ``user_id`` by.

        The user id is validated first (the same rules and messages as ``MemoryClient``); for a
        tenant the prefix counts against ``limits.user_id_max_len``.
        """
        uid = validate_user_id(user_id, limits, field)
        if self.tenant is None:
            return uid
        prefix = tenant_prefix(self.tenant)
        if len(prefix) + len(uid) > limits.user_id_max_len:
            room = limits.user_id_max_len - len(prefix)
            raise InvalidInput(field, f"longer than {room} characters")
        return prefix + uid

    def outside(self, inside_id: str) -> str:
        """The id this caller knows an inside id by (only ever called on its own users)."""
        if self.tenant is None:
            return inside_id
        prefix = tenant_prefix(self.tenant)
        if not inside_id.startswith(prefix):
            # A route handed back a user of another tenant: refuse loudly rather than leak it.
            raise LookupError("a user id outside the caller's tenant reached a response")
        return inside_id[len(prefix) :]

    def owns(self, inside_id: str) -> bool:
        """Whether an inside id belongs to this caller (an admin owns every id)."""
        return self.tenant is None or inside_id.startswith(tenant_prefix(self.tenant))
