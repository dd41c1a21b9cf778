"""Clock-driven work: releasing matured accruals and issuing last month's statements.

Both read a projection to find what is due and issue commands with ids derived from what they
are about (the accrual, the influencer and month), so a repeated tick, a lagging projection or
two ticks racing write nothing twice: the store drops the second append of the same event id
and the deciders return nothing for an accrual already released or a period already stated.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from shopstream_observability import get_logger
from shopstream_service.domain import DomainError
from shopstream_service.runtime import ServiceContext, Ticker

from .commands import Actor, IssueStatement
from .handlers import CommissionHandlers
from .projections import timestamp

log = get_logger(__name__)

TICKER_NAMESPACE = uuid.UUID("5d0b8f3a-61c2-5e47-a9d8-2b7e4c1f0a93")
"""Fixed forever: release and statement command ids are derived from it."""

SYSTEM = Actor("shopstream-commission", is_admin=True)
BATCH = 500


def release_command_id(accrual_id: str) -> uuid.UUID:
    return uuid.uuid5(TICKER_NAMESPACE, f"release/{accrual_id}")


async def release_matured(context: ServiceContext) -> None:
    handlers = CommissionHandlers(context.handler, context.clock)
    due = await context.readmodel.fetch(
        "SELECT influencer_id, accrual_id FROM commission_accruals "
        "WHERE status = 'held' AND hold_until <= $1 ORDER BY hold_until LIMIT $2",
        timestamp(context.clock.now()),
        BATCH,
    )
    for influencer_id, accrual_id in due:
        try:
            await handlers.release(influencer_id, accrual_id, command_id=release_command_id(accrual_id))
        except DomainError as refusal:
            log.warning("commission.release_refused", accrual_id=accrual_id, code=refusal.code)


def month_start(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_month(at: datetime) -> tuple[datetime, datetime]:
    """The last calendar month (UTC) that has ended at ``at``."""
    end = month_start(at)
    return month_start(end - timedelta(days=1)), end


async def issue_monthly_statements(context: ServiceContext) -> None:
    """Every influencer with a ledger in a currency before the last month ended gets a statement
    of that month in that currency."""
    handlers = CommissionHandlers(context.handler, context.clock)
    now = context.clock.now()
    start, end = previous_month(now)
    due = await context.readmodel.fetch(
        "SELECT DISTINCT a.influencer_id, a.currency FROM commission_accruals a "
        "WHERE a.accrued_at < $1 AND NOT EXISTS (SELECT 1 FROM commission_statements s "
        "WHERE s.influencer_id = a.influencer_id AND s.currency = a.currency "
        "AND s.period_start = $2 AND s.period_end = $1) "
        "ORDER BY a.influencer_id, a.currency LIMIT $3",
        timestamp(end),
        timestamp(start),
        BATCH,
    )
    for influencer_id, currency in due:
        command_id = uuid.uuid5(TICKER_NAMESPACE, f"statement/{influencer_id}/{timestamp(start)}/{currency}")
        command = IssueStatement(
            influencer_id=influencer_id,
            statement_id=str(command_id),
            period_start=start,
            period_end=end,
            currency=currency,
            actor=SYSTEM,
            at=now,
        )
        try:
            await handlers.issue_statement(command, command_id=command_id)
        except DomainError as refusal:
            log.warning("commission.statement_refused", influencer_id=influencer_id, code=refusal.code)


TICKERS = (
    Ticker("release-matured", 1.0, release_matured),
    Ticker("monthly-statements", 2.0, issue_monthly_statements),
)
