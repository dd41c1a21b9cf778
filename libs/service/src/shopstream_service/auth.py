"""Bearer JWT authentication and the principal every request acts as.

Tokens are checked for signature, issuer, audience and expiry. Locally they are HS256 with a
shared key; in production a service is given the issuer's public key (RS256/ES256) and never
holds a signing secret. A token says who (``sub``), what (``roles``) and, for brand staff, for
which brands (``brands``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .domain import Forbidden

ROLES = frozenset({"viewer", "influencer", "brand", "moderator", "admin"})
_ASYMMETRIC = ["RS256", "ES256"]


class Unauthenticated(Exception):
    """No valid bearer token: HTTP 401 with the reason."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    roles: frozenset[str]
    brands: frozenset[str] = field(default_factory=frozenset)

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def staff_of(self, brand_id: str) -> bool:
        return "brand" in self.roles and brand_id in self.brands


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    issuer: str
    audience: str
    secret: str | None = None
    public_key: str | None = None
    leeway: timedelta = timedelta(seconds=30)

    def verify(self, token: str) -> Principal:
        key, algorithms = (self.public_key, _ASYMMETRIC) if self.public_key else (self.secret, ["HS256"])
        if key is None:
            raise Unauthenticated("the service has no key to verify tokens with")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        roles = claims.get("roles", [])
        brands = claims.get("brands", [])
        if not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            raise Unauthenticated("invalid token: roles must be a list of strings")
        if not (isinstance(brands, list) and all(isinstance(b, str) for b in brands)):
            raise Unauthenticated("invalid token: brands must be a list of strings")
        unknown = set(roles) - ROLES
        if unknown:
            raise Unauthenticated(f"invalid token: unknown roles {sorted(unknown)}")
        return Principal(str(claims["sub"]), frozenset(roles), frozenset(brands))


def mint_token(
    *,
    secret: str,
    issuer: str,
    audience: str,
    subject: str,
    roles: Iterable[str],
    brands: Iterable[str] = (),
    lifetime: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """An HS256 token for local development and tests (production tokens come from the IdP)."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": sorted(roles),
        "brands": sorted(brands),
        "iat": issued,
        "exp": issued + lifetime,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated("missing bearer token")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)


Authenticated = Annotated[Principal, Depends(current_principal)]
"""A route parameter of this type requires a valid token and receives its principal."""


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals having any of ``roles`` (admins always)."""

    # async (though it never awaits) so FastAPI calls it on the loop, not through a thread pool.
    async def check(principal: Authenticated) -> Principal:
        if not (principal.is_admin or principal.has(*roles)):
            raise Forbidden("role_required", f"requires one of the roles {sorted(roles)}")
        return principal

    return check
