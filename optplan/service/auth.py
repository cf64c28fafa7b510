"""Tokens, roles and country scopes.

A token is ``opt_`` + 40 random URL-safe characters, shown once; the database keeps its
SHA-256 only (a token has 240 bits of entropy, so a fast hash is the right one: no salt or
stretching is needed against guessing). A request carries it as ``Authorization: Bearer``;
no cookie is read, so the API is not open to cross-site request forgery.

Roles are ordered: viewer (read) < planner (upload datasets, submit and cancel runs, manage
schedules) < approver (approve or reject plans) < admin (tokens, the audit log, workers).
A token's ``countries`` scope what it sees: a dataset, run, decision or schedule is visible
only when all its countries are in the token's scope (an empty scope: every country; a
network without countries needs an unscoped token). What is not visible is answered 404, as
if it did not exist, so ids do not leak.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from optplan.service.models import Token

ROLES = ("viewer", "planner", "approver", "admin")
PREFIX = "opt_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(30)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's id, role and country scope."""

    token_id: str
    name: str
    role: str
    countries: tuple[str, ...]

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def unscoped(self) -> bool:
        return not self.countries

    def sees(self, countries) -> bool:
        """Whether objects of these countries are visible to this principal."""
        if self.unscoped:
            return True
        countries = list(countries or [])
        return bool(countries) and set(countries) <= set(self.countries)


def create_token(session, name: str, role: str, countries=(), created_by: str = "") -> tuple[Token, str]:
    """A new token row and its secret (shown once)."""
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, found {role!r}")
    secret = new_secret()
    token = Token(name=name, secret_sha256=hash_secret(secret), role=role, countries=sorted(set(countries)),
                  created_by=created_by)
    session.add(token)
    session.flush()
    return token, secret


def principal_of(session, secret: str | None) -> Principal | None:
    if not secret or not secret.startswith(PREFIX):
        return None
    token = session.scalar(select(Token).where(Token.secret_sha256 == hash_secret(secret), Token.revoked.is_(False)))
    if token is None:
        return None
    return Principal(token.id, token.name, token.role, tuple(token.countries or ()))
