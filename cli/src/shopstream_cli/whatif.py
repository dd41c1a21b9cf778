"""What-if: replay past sales through a proposed agreement, writing nothing."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shopstream_analytics.selection import SelectionError, parse_instant
from shopstream_analytics.sources import DEFAULT_STORE_URL, SourceError, store_refs
from shopstream_analytics.whatif import (
    Comparison,
    Proposal,
    Selection,
    Tier,
    WhatIf,
    WhatIfError,
    what_if,
)
from shopstream_cli.report import StoreUrl, fail
from shopstream_commission.values import Share

app = typer.Typer(
    no_args_is_help=True, help="What-if: replay past sales through a proposed agreement, writing nothing."
)


def _pair(text: str, option: str, what: str) -> tuple[str, int]:
    key, _, number = text.partition(":")
    if not key or not number.strip().isdigit():
        raise fail(f"{option} {text!r}: expected {what}")
    return key.strip(), int(number)


@app.command("commission")
def commission(
    rate_bps: Annotated[int, typer.Option("--rate-bps", help="Proposed commission rate, basis points.")],
    live: Annotated[str | None, typer.Option("--live", help="Replay this live's orders.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Replay orders confirmed from this instant (ISO-8601, with Z)."),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="… until this instant (exclusive).")] = None,
    holdback_days: Annotated[
        int | None, typer.Option("--holdback-days", help="Proposed holdback; default: the agreement's.")
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(
            "--tier", help="FROM:BPS — the rate from that cumulative GMV (minor units) of the agreement on."
        ),
    ] = None,
    share: Annotated[
        list[str] | None,
        typer.Option(
            "--share", help="INFLUENCER:BPS — proposed co-host shares (sum 10000); default: as signed."
        ),
    ] = None,
    store_url: StoreUrl = DEFAULT_STORE_URL,
) -> None:
    """Actual against proposed commission of a live's (or a period's) confirmed orders, per
    influencer and per brand. Reads the stores only."""
    try:
        period = None
        if since is not None or until is not None:
            if since is None or until is None:
                raise fail("a period needs both --since and --until")
            period = (parse_instant(since, "--since"), parse_instant(until, "--until"))
        if (live is None) == (period is None):
            raise fail("choose what to replay: --live ID, or --since T --until T")
        tiers = tuple(_tier(text) for text in tier or ())
        shares = (
            None if not share else tuple(Share(*_pair(text, "--share", "INFLUENCER:BPS")) for text in share)
        )
        selection = Selection(live_id=live, period=period)
        proposal = Proposal(rate_bps=rate_bps, holdback_days=holdback_days, tiers=tiers, shares=shares)
        result = asyncio.run(what_if(store_refs(store_url), selection, proposal))
    except (WhatIfError, SelectionError, SourceError) as error:
        raise fail(str(error)) from None
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(headline(result), highlight=False)
    console.print(comparison_table("per influencer", "influencer", result.by_influencer))
    console.print(comparison_table("per brand", "brand", result.by_brand))


def _tier(text: str) -> Tier:
    threshold, rate = _pair(text, "--tier", "FROM:BPS, e.g. 100000:1200")
    if not threshold.isdigit():
        raise fail(f"--tier {text!r}: FROM is an amount in minor units, e.g. 100000:1200")
    return Tier(from_gmv=int(threshold), rate_bps=rate)


def headline(result: WhatIf) -> str:
    proposal = result.proposal
    terms = [f"rate {proposal.rate_bps} bps"]
    terms += [f"{tier.rate_bps} bps from {tier.from_gmv}" for tier in proposal.tiers]
    terms.append(
        "holdback as signed" if proposal.holdback_days is None else f"holdback {proposal.holdback_days} d"
    )
    if proposal.shares is not None:
        terms.append("shares " + ", ".join(f"{s.influencer_id} {s.share_bps}" for s in proposal.shares))
    gmv = ", ".join(f"{amount} {currency}" for currency, amount in sorted(result.gmv.items()))
    as_of = "" if result.as_of is None else f"; released as of {result.as_of:%Y-%m-%d %H:%M:%S} UTC"
    return (
        f"What if: {result.selection.describe()} — {result.orders} confirmed orders, GMV {gmv} "
        f"(minor units)\nproposed: {'; '.join(terms)}{as_of}. Nothing was written."
    )


def comparison_table(title: str, party: str, rows: tuple[Comparison, ...]) -> Table:
    """Actual figures, then the proposed ones (starred), then proposed net − actual net."""
    table = Table(title=title, caption="* proposed · money in minor units")
    table.add_column(party, no_wrap=True)
    table.add_column("cur")
    for header in ("accrued", "reversed", "net", "released", "accrued*", "reversed*", "net*", "released*"):
        table.add_column(header, justify="right")
    table.add_column("difference", justify="right")
    for row in rows:
        a, p = row.actual, row.proposed
        figures = (a.accrued, a.reversed, a.net, a.released, p.accrued, p.reversed, p.net, p.released)
        table.add_row(
            row.party, row.currency, *map(str, figures), f"{row.difference:+d}" if row.difference else "0"
        )
    return table
