"""The one mapping from a tenant's user id to the id the buffer and the store see."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memlane.config_sections import LimitSettings
from memlane.errors import BadRequest, InvalidInput
from service.body import parse_object
from service.tenancy import Principal, validate_tenant

LIMITS = LimitSettings()
USERS = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
TENANTS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)


@given(t1=TENANTS, t2=TENANTS, u1=USERS, u2=USERS)
def test_inside_ids_of_different_tenants_never_collide(t1: str, t2: str, u1: str, u2: str) -> None:
    """Two (tenant, user) pairs map to one inside id only when they are the same pair."""
    try:
        a = Principal("k1", t1).inside(u1, LIMITS)
        b = Principal("k2", t2).inside(u2, LIMITS)
    except InvalidInput:
        return  # a user id the client refuses anyway (control characters)
    assert (a == b) == ((t1, u1) == (t2, u2))


@given(tenant=TENANTS, user=USERS)
def test_outside_undoes_inside(tenant: str, user: str) -> None:
    """A tenant gets back exactly the id it sent."""
    who = Principal("k", tenant)
    try:
        inside = who.inside(user, LIMITS)
    except InvalidInput:
        return
    assert who.outside(inside) == user and who.owns(inside)


def test_an_admin_key_uses_inside_ids_unchanged() -> None:
    """No prefix for an admin; it owns every id."""
    admin = Principal("k", None)
    assert admin.inside("@acme/alice", LIMITS) == "@acme/alice"
    assert admin.owns("@acme/alice") and admin.outside("x") == "x"


def test_outside_refuses_another_tenant_s_id() -> None:
    """A route that hands back another tenant's user fails loudly instead of leaking it."""
    with pytest.raises(LookupError):
        Principal("k", "a").outside("@b/alice")


@pytest.mark.parametrize("bad", ["", "Acme", "a/b", "@a", "-a", "x" * 33, None])
def test_tenant_names_are_restricted(bad: object) -> None:
    """Tenant names cannot contain the separator or the mark, and are short."""
    with pytest.raises(InvalidInput) as e:
        validate_tenant(bad)
    assert e.value.field == "tenant"


def test_the_prefix_counts_against_the_user_id_limit() -> None:
    """For tenant 'acme' (6 characters of prefix) a user id may have 122 characters."""
    who = Principal("k", "acme")
    assert who.inside("u" * 122, LIMITS) == "@acme/" + "u" * 122
    with pytest.raises(InvalidInput, match="longer than 122 characters"):
        who.inside("u" * 123, LIMITS)


@pytest.mark.parametrize(
    ("raw", "error"),
    [(b"{", BadRequest), (b"\xc3(", BadRequest), (b"[]", BadRequest), (b'{"x": 1}', InvalidInput)],
)
def test_bodies_are_utf8_json_objects_of_known_fields(raw: bytes, error: type) -> None:
    """400 for what is not a UTF-8 JSON object; 422 (InvalidInput) for an unknown field."""
    with pytest.raises(error):
        parse_object(raw, ("query",))


def test_an_empty_body_is_an_empty_object_and_missing_fields_are_named() -> None:
    """An empty body reads as {}; a required field that is absent is InvalidInput by name."""
    assert parse_object(b"", ("wait",)) == {}
    with pytest.raises(InvalidInput) as e:
        parse_object(b"{}", ("query",), ("query",))
    assert e.value.field == "query"
