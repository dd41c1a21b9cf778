"""`shopstream token mint`: bearer tokens for local development (HS256, the dev key)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from shopstream_service.auth import ROLES, mint_token
from shopstream_service.settings import ServiceSettings

app = typer.Typer(no_args_is_help=True, help="Bearer tokens for local development.")


@app.command()
def mint(
    subject: Annotated[str, typer.Option(help="Who the token is for (the `sub` claim).")],
    role: Annotated[list[str], typer.Option(help=f"A role ({', '.join(sorted(ROLES))}); repeatable.")],
    brand: Annotated[list[str] | None, typer.Option(help="A brand the subject staffs; repeatable.")] = None,
    hours: Annotated[float, typer.Option(help="Lifetime.")] = 12.0,
) -> None:
    """Print a token the local services accept (same issuer, audience and key as their defaults)."""
    unknown = set(role) - ROLES
    if unknown:
        raise typer.BadParameter(f"unknown roles {sorted(unknown)}", param_hint="--role")
    settings = ServiceSettings()
    if settings.jwt_secret is None:
        raise typer.BadParameter("SHOPSTREAM_JWT_SECRET is unset: production tokens come from the IdP")
    print(
        mint_token(
            secret=settings.jwt_secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            subject=subject,
            roles=role,
            brands=brand or [],
            lifetime=timedelta(hours=hours),
        )
    )
