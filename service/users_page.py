"""``list_users`` for a caller: an admin sees every user, a tenant only its own namespace.

A tenant's users are the ids that start with its prefix, so a tenant's page is
``list_users`` with the prefix (and the caller's own prefix, if any, after it): it starts at
the prefix and ends at the first id outside it. Every returned user is also checked with
:meth:`Principal.owns`, so no cursor, forged or not, can bring another tenant's user into the
answer.
"""

from __future__ import annotations

from memlane import MemoryClient
from memlane.memories.params import validate_prefix
from memlane.models import UserSummary
from service.tenancy import Principal, tenant_prefix


def users_page(
    client: MemoryClient, who: Principal, cursor: str | None, limit: int, prefix: str | None = None
) -> tuple[list[UserSummary], str | None]:
    """One page of the caller's users whose (outside) id starts with ``prefix``, and the cursor
    of the next page (None: no more)."""
    own = validate_prefix(prefix, client.settings.limits) or ""
    if who.tenant is None:
        page = client.list_users(cursor, limit, own or None)
        return page.users, page.cursor
    page = client.list_users(cursor, limit, tenant_prefix(who.tenant) + own)
    mine = [u for u in page.users if who.owns(u.user_id)]
    more = page.cursor is not None and len(mine) == len(page.users)
    return mine, page.cursor if more else None
