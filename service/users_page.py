"""``list_users`` for a caller: an admin sees every user, a tenant only its own namespace.

A tenant's users are the ids that start with its prefix, and ``list_users`` pages in id order,
so a tenant's page starts right after the prefix and ends at the first id outside it. Every
returned user is also checked with :meth:`Principal.owns`, so no cursor, forged or not, can
bring another tenant's user into the answer.
"""

from __future__ import annotations

from memlane import MemoryClient
from memlane.memories.params import decode_user_cursor, encode_user_cursor
from memlane.models import UserSummary
from service.tenancy import Principal, tenant_prefix


def users_page(
    client: MemoryClient, who: Principal, cursor: str | None, limit: int
) -> tuple[list[UserSummary], str | None]:
    """One page of the caller's users and the cursor of the next (None: no more)."""
    if who.tenant is None:
        page = client.list_users(cursor, limit)
        return page.users, page.cursor
    prefix = tenant_prefix(who.tenant)
    after = decode_user_cursor(cursor)
    start = after if after is not None and after > prefix else prefix
    page = client.list_users(encode_user_cursor(start), limit)
    mine = [u for u in page.users if who.owns(u.user_id)]
    more = page.cursor is not None and len(mine) == len(page.users)
    return mine, page.cursor if more else None
