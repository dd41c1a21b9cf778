"""HTTP API: commands in, projections out. Business rules live in the deciders; the routes add
only who may *see* what (reads have no decider):

- agreements: signed and amended by the brand's staff or an admin (the decider checks); read
  by the brand's staff, the agreement's parties (its influencer and co-hosts) and admins;
- an influencer's balance, ledger, accruals and statements: that influencer or an admin;
- an order's commission: the selling brand's staff and admins see every part, an influencer
  only their own part.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from shopstream_contracts import Money
from shopstream_contracts.base import CurrencyCode, Id
from shopstream_contracts.commission.v1 import CommissionShare
from shopstream_processing import Row, Statement
from shopstream_service.auth import Authenticated, Principal, require_roles
from shopstream_service.domain import Forbidden, NotFound
from shopstream_service.http import context_of, correlation_id

from .commands import Actor, AmendAgreement, IssueStatement, SignAgreement
from .handlers import CommissionHandlers
from .projections import timestamp
from .values import Share

router = APIRouter(tags=["commission"])

BrandStaff = Annotated[Principal, Depends(require_roles("brand"))]
Influencer = Annotated[Principal, Depends(require_roles("influencer"))]


def _actor(principal: Principal) -> Actor:
    brands = principal.brands if principal.has("brand") else frozenset()
    return Actor(principal.subject, is_admin=principal.is_admin, brands=brands)


def _handlers(request: Request) -> CommissionHandlers:
    context = context_of(request)
    return CommissionHandlers(context.handler, context.clock)


def _money(amount: int, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


# Agreements -------------------------------------------------------------------------------------


class ShareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    influencer_id: Id
    share_bps: StrictInt


class TermsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_bps: StrictInt = Field(description="Commission rate on the order total, 1–10000 bps.")
    holdback_days: StrictInt = Field(description="Days an accrual is held before release, 0–365.")
    cohost_shares: list[ShareBody] = Field(
        default_factory=list,
        description="Split among co-hosts, the influencer included, summing to 10000 bps; empty: "
        "the influencer alone.",
    )
    effective_from: AwareDatetime | None = Field(
        default=None, description="Sales from this instant on use these terms; default: now."
    )

    def shares(self) -> tuple[Share, ...]:
        return tuple(Share(s.influencer_id, s.share_bps) for s in self.cohost_shares)


class SignBody(TermsBody):
    agreement_id: Id | None = Field(
        default=None,
        description="Chosen by the client to make the request safe to retry; default: generated.",
    )
    brand_id: Id
    influencer_id: Id = Field(description="The influencer signing (the live's lead host).")


class AgreementVersionView(BaseModel):
    version: int
    rate_bps: int
    holdback_days: int
    cohost_shares: list[CommissionShare]
    effective_from: datetime
    signed_by: str
    signed_at: datetime


class AgreementView(BaseModel):
    agreement_id: str
    brand_id: str
    influencer_id: str
    current_version: int
    versions: list[AgreementVersionView]


async def _agreement_rows(request: Request, where: str, *args: Any) -> list[AgreementView]:
    db = context_of(request).readmodel
    heads, versions = await db.read(
        [
            Statement(
                f"SELECT agreement_id, brand_id, influencer_id, current_version FROM commission_agreements "
                f"WHERE {where} ORDER BY agreement_id",
                args,
            ),
            Statement(
                f"SELECT agreement_id, version, rate_bps, holdback_days, cohost_shares, effective_from, "
                f"signed_by, signed_at FROM commission_agreement_versions WHERE agreement_id IN "
                f"(SELECT agreement_id FROM commission_agreements WHERE {where}) "
                f"ORDER BY agreement_id, version",
                args,
            ),
        ]
    )
    by_id: dict[str, list[AgreementVersionView]] = {}
    for agreement_id, version, rate, holdback, shares, effective_from, signed_by, signed_at in versions:
        by_id.setdefault(agreement_id, []).append(
            AgreementVersionView(
                version=version,
                rate_bps=rate,
                holdback_days=holdback,
                cohost_shares=[CommissionShare(**s) for s in json.loads(shares)],
                effective_from=effective_from,
                signed_by=signed_by,
                signed_at=signed_at,
            )
        )
    return [
        AgreementView(
            agreement_id=agreement_id,
            brand_id=brand_id,
            influencer_id=influencer_id,
            current_version=current,
            versions=by_id.get(agreement_id, []),
        )
        for agreement_id, brand_id, influencer_id, current in heads
    ]


def _may_see_agreement(principal: Principal, agreement: AgreementView) -> bool:
    parties = {agreement.influencer_id} | {
        s.influencer_id for version in agreement.versions for s in version.cohost_shares
    }
    return principal.is_admin or principal.staff_of(agreement.brand_id) or principal.subject in parties


async def _agreement(request: Request, agreement_id: str, principal: Principal) -> AgreementView:
    found = await _agreement_rows(request, "agreement_id = $1", agreement_id)
    if not found:
        raise NotFound("agreement_not_found", f"no agreement {agreement_id!r}")
    if not _may_see_agreement(principal, found[0]):
        raise Forbidden(
            "not_a_party", "only the agreement's brand staff, its influencers and admins may see it"
        )
    return found[0]


@router.post("/agreements", status_code=201, response_model=AgreementView)
async def sign_agreement(body: SignBody, principal: BrandStaff, request: Request) -> AgreementView:
    context = context_of(request)
    command_id = uuid.uuid4()
    command = SignAgreement(
        agreement_id=body.agreement_id or f"agr_{command_id.hex}",
        brand_id=body.brand_id,
        influencer_id=body.influencer_id,
        rate_bps=body.rate_bps,
        holdback_days=body.holdback_days,
        cohost_shares=body.shares(),
        effective_from=body.effective_from,
        actor=_actor(principal),
        at=context.clock.now(),
    )
    outcome = await _handlers(request).sign(
        command, command_id=command_id, correlation_id=correlation_id(request)
    )
    await context.wait_for(outcome.position)
    return await _agreement(request, command.agreement_id, principal)


@router.post("/agreements/{agreement_id}/versions", status_code=201, response_model=AgreementView)
async def amend_agreement(
    agreement_id: Id, body: TermsBody, principal: BrandStaff, request: Request
) -> AgreementView:
    context = context_of(request)
    command = AmendAgreement(
        agreement_id=agreement_id,
        rate_bps=body.rate_bps,
        holdback_days=body.holdback_days,
        cohost_shares=body.shares(),
        effective_from=body.effective_from,
        actor=_actor(principal),
        at=context.clock.now(),
    )
    outcome = await _handlers(request).amend(
        command, command_id=uuid.uuid4(), correlation_id=correlation_id(request)
    )
    await context.wait_for(outcome.position)
    return await _agreement(request, agreement_id, principal)


@router.get("/agreements/{agreement_id}", response_model=AgreementView)
async def get_agreement(agreement_id: Id, principal: Authenticated, request: Request) -> AgreementView:
    return await _agreement(request, agreement_id, principal)


@router.get("/agreements", response_model=list[AgreementView])
async def list_agreements(
    principal: Authenticated,
    request: Request,
    brand_id: Annotated[Id | None, Query()] = None,
    influencer_id: Annotated[Id | None, Query()] = None,
) -> list[AgreementView]:
    """Agreements of a brand (its staff) or of an influencer (that influencer); admins see any."""
    if brand_id is None and influencer_id is None:
        if not principal.is_admin:
            raise Forbidden("filter_required", "say brand_id (your brand) or influencer_id (yourself)")
        return await _agreement_rows(request, "1 = 1")
    if brand_id is not None and not (principal.is_admin or principal.staff_of(brand_id)):
        raise Forbidden("not_brand_staff", f"only staff of brand {brand_id!r} may list its agreements")
    if influencer_id is not None and not (principal.is_admin or principal.subject == influencer_id):
        raise Forbidden("not_own_account", "an influencer may only list their own agreements")
    if brand_id is not None and influencer_id is not None:
        return await _agreement_rows(request, "brand_id = $1 AND influencer_id = $2", brand_id, influencer_id)
    if brand_id is not None:
        return await _agreement_rows(request, "brand_id = $1", brand_id)
    return await _agreement_rows(request, "influencer_id = $1", influencer_id)


# Influencer accounts ---------------------------------------------------------------------------


def _own(principal: Principal, influencer_id: str) -> None:
    if not (principal.is_admin or principal.subject == influencer_id):
        raise Forbidden("not_own_account", "an influencer sees only their own commission")


class CurrencyBalance(BaseModel):
    currency: str
    held: Money = Field(description="Accrued, not yet released, net of reversals.")
    released: Money = Field(description="Released (payable), net of reversals after release.")
    total: Money = Field(description="held + released = accrued − reversed.")
    accrued: Money
    reversed: Money
    accruals: int


class BalanceView(BaseModel):
    influencer_id: str
    balances: list[CurrencyBalance]


@router.get("/influencers/{influencer_id}/balance", response_model=BalanceView)
async def balance(influencer_id: Id, principal: Influencer, request: Request) -> BalanceView:
    _own(principal, influencer_id)
    rows = await context_of(request).readmodel.fetch(
        "SELECT currency, "
        "SUM(CASE WHEN released IS NULL THEN amount - reversed_before_release ELSE 0 END), "
        "SUM(CASE WHEN released IS NULL THEN 0 ELSE released - reversed_after_release END), "
        "SUM(amount), SUM(reversed_before_release + reversed_after_release), COUNT(*) "
        "FROM commission_accruals WHERE influencer_id = $1 GROUP BY currency ORDER BY currency",
        influencer_id,
    )
    return BalanceView(
        influencer_id=influencer_id,
        balances=[
            CurrencyBalance(
                currency=currency,
                held=_money(int(held), currency),
                released=_money(int(released), currency),
                total=_money(int(held) + int(released), currency),
                accrued=_money(int(accrued), currency),
                reversed=_money(int(reversed_), currency),
                accruals=int(count),
            )
            for currency, held, released, accrued, reversed_, count in rows
        ],
    )


class LedgerEntryView(BaseModel):
    position: int = Field(description="Ledger order; pass the last one as `after` for the next page.")
    kind: Literal["accrued", "released", "reversed"]
    entry_id: str = Field(description="The accrual id (accrued, released) or the reversal id.")
    accrual_id: str
    order_id: str
    amount: Money
    reason: str | None
    refund_id: str | None
    occurred_at: datetime


class LedgerPage(BaseModel):
    influencer_id: str
    entries: list[LedgerEntryView]
    next_after: int | None = Field(description="`after` of the next page; null on the last page.")


@router.get("/influencers/{influencer_id}/ledger", response_model=LedgerPage)
async def ledger(
    influencer_id: Id,
    principal: Influencer,
    request: Request,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LedgerPage:
    _own(principal, influencer_id)
    rows = await context_of(request).readmodel.fetch(
        "SELECT position, kind, entry_id, accrual_id, order_id, amount, currency, reason, refund_id, "
        "occurred_at FROM commission_ledger_entries WHERE influencer_id = $1 AND position > $2 "
        "ORDER BY position LIMIT $3",
        influencer_id,
        after,
        limit + 1,
    )
    entries = [
        LedgerEntryView(
            position=row[0],
            kind=row[1],
            entry_id=row[2],
            accrual_id=row[3],
            order_id=row[4],
            amount=_money(row[5], row[6]),
            reason=row[7],
            refund_id=row[8],
            occurred_at=row[9],
        )
        for row in rows[:limit]
    ]
    return LedgerPage(
        influencer_id=influencer_id,
        entries=entries,
        next_after=entries[-1].position if len(rows) > limit else None,
    )


AccrualStatus = Literal["held", "released", "reversed"]


class AccrualView(BaseModel):
    accrual_id: str
    influencer_id: str
    order_id: str
    brand_id: str
    live_id: str | None
    agreement_id: str
    agreement_version: int
    rate_bps: int
    share_bps: int
    base: Money
    amount: Money
    reversed: Money
    released: Money | None
    status: AccrualStatus = Field(
        description="held: in holdback; released: payable; reversed: taken back in full before release."
    )
    hold_until: datetime
    accrued_at: datetime
    released_at: datetime | None


_ACCRUAL_COLUMNS = (
    "accrual_id, influencer_id, order_id, brand_id, live_id, agreement_id, agreement_version, rate_bps, "
    "share_bps, base, currency, amount, reversed_before_release + reversed_after_release, released, status, "
    "hold_until, accrued_at, released_at"
)


def _accrual(row: Row) -> AccrualView:
    (
        accrual_id,
        influencer_id,
        order_id,
        brand_id,
        live_id,
        agreement_id,
        version,
        rate,
        share,
        base,
        currency,
        amount,
        reversed_,
        released,
        status,
        hold_until,
        accrued_at,
        released_at,
    ) = row
    return AccrualView(
        accrual_id=accrual_id,
        influencer_id=influencer_id,
        order_id=order_id,
        brand_id=brand_id,
        live_id=live_id,
        agreement_id=agreement_id,
        agreement_version=version,
        rate_bps=rate,
        share_bps=share,
        base=_money(base, currency),
        amount=_money(amount, currency),
        reversed=_money(int(reversed_), currency),
        released=None if released is None else _money(released, currency),
        status=status,
        hold_until=hold_until,
        accrued_at=accrued_at,
        released_at=released_at,
    )


@router.get("/influencers/{influencer_id}/accruals", response_model=list[AccrualView])
async def accruals(
    influencer_id: Id,
    principal: Influencer,
    request: Request,
    status: Annotated[AccrualStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[AccrualView]:
    _own(principal, influencer_id)
    rows = await context_of(request).readmodel.fetch(
        f"SELECT {_ACCRUAL_COLUMNS} FROM commission_accruals WHERE influencer_id = $1 "
        f"AND ($2 = '' OR status = $2) ORDER BY accrued_at, accrual_id LIMIT $3 OFFSET $4",
        influencer_id,
        status or "",
        limit,
        offset,
    )
    return [_accrual(row) for row in rows]


class StatementBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_start: AwareDatetime
    period_end: AwareDatetime = Field(description="Exclusive; the period must have ended.")
    currency: CurrencyCode | None = Field(default=None, description="Default: the ledger's only currency.")


class StatementView(BaseModel):
    statement_id: str
    influencer_id: str
    period_start: datetime
    period_end: datetime
    opening_balance: Money
    accrued: Money
    reversed: Money
    released: Money
    closing_balance: Money
    entries: int
    issued_at: datetime


_STATEMENT_COLUMNS = (
    "statement_id, influencer_id, period_start, period_end, currency, opening_balance, accrued, reversed, "
    "released, closing_balance, entries, issued_at"
)


def _statement(row: Row) -> StatementView:
    (
        sid,
        influencer_id,
        start,
        end,
        currency,
        opening,
        accrued,
        reversed_,
        released,
        closing,
        entries,
        issued,
    ) = row
    return StatementView(
        statement_id=sid,
        influencer_id=influencer_id,
        period_start=start,
        period_end=end,
        opening_balance=_money(opening, currency),
        accrued=_money(accrued, currency),
        reversed=_money(reversed_, currency),
        released=_money(released, currency),
        closing_balance=_money(closing, currency),
        entries=entries,
        issued_at=issued,
    )


@router.post("/influencers/{influencer_id}/statements", status_code=201, response_model=StatementView)
async def issue_statement(
    influencer_id: Id, body: StatementBody, principal: Influencer, request: Request, response: Response
) -> StatementView:
    """Issue the statement of a period that has ended; issuing it again returns the same one (200)."""
    _own(principal, influencer_id)
    context = context_of(request)
    command_id = uuid.uuid4()
    command = IssueStatement(
        influencer_id=influencer_id,
        statement_id=str(command_id),
        period_start=body.period_start,
        period_end=body.period_end,
        currency=body.currency,
        actor=_actor(principal),
        at=context.clock.now(),
    )
    outcome = await _handlers(request).issue_statement(
        command, command_id=command_id, correlation_id=correlation_id(request)
    )
    await context.wait_for(outcome.position)
    if not outcome.events:
        response.status_code = 200
    rows = await context.readmodel.fetch(
        f"SELECT {_STATEMENT_COLUMNS} FROM commission_statements WHERE influencer_id = $1 "
        f"AND period_start = $2 AND period_end = $3 AND ($4 = '' OR currency = $4) ORDER BY currency",
        influencer_id,
        timestamp(body.period_start),
        timestamp(body.period_end),
        body.currency or "",
    )
    return _statement(rows[0])


@router.get("/influencers/{influencer_id}/statements", response_model=list[StatementView])
async def statements(
    influencer_id: Id,
    principal: Influencer,
    request: Request,
    currency: Annotated[CurrencyCode | None, Query()] = None,
    period_start: Annotated[
        AwareDatetime | None, Query(description="Statements starting at or after.")
    ] = None,
    period_end: Annotated[AwareDatetime | None, Query(description="Statements ending at or before.")] = None,
) -> list[StatementView]:
    _own(principal, influencer_id)
    rows = await context_of(request).readmodel.fetch(
        f"SELECT {_STATEMENT_COLUMNS} FROM commission_statements WHERE influencer_id = $1 "
        f"AND ($2 = '' OR currency = $2) AND ($3 = '' OR period_start >= $3) "
        f"AND ($4 = '' OR period_end <= $4) "
        f"ORDER BY period_start, period_end, currency",
        influencer_id,
        currency or "",
        timestamp(period_start) if period_start else "",
        timestamp(period_end) if period_end else "",
    )
    return [_statement(row) for row in rows]


@router.get("/influencers/{influencer_id}/statements/{statement_id}", response_model=StatementView)
async def statement(
    influencer_id: Id, statement_id: Id, principal: Influencer, request: Request
) -> StatementView:
    _own(principal, influencer_id)
    rows = await context_of(request).readmodel.fetch(
        f"SELECT {_STATEMENT_COLUMNS} FROM commission_statements "
        f"WHERE influencer_id = $1 AND statement_id = $2",
        influencer_id,
        statement_id,
    )
    if not rows:
        raise NotFound("statement_not_found", f"no statement {statement_id!r} for {influencer_id!r}")
    return _statement(rows[0])


# Orders ----------------------------------------------------------------------------------------


class OrderCommissionView(BaseModel):
    order_id: str
    live_id: str
    brand_id: str
    status: Literal["allocated", "not_allocated"]
    reason: str | None = Field(description="Why the order earns no commission (not_allocated).")
    detail: str | None
    agreement_id: str | None
    agreement_version: int | None
    base: Money | None
    commission: Money | None = Field(description="The order's whole commission: its accruals sum to it.")
    accruals: list[AccrualView]


@router.get("/orders/{order_id}/commission", response_model=OrderCommissionView)
async def order_commission(order_id: Id, principal: Authenticated, request: Request) -> OrderCommissionView:
    """The commission of an order: its allocation and each host's accrual."""
    db = context_of(request).readmodel
    allocation, accrual_rows = await db.read(
        [
            Statement(
                "SELECT live_id, brand_id, status, reason, detail, agreement_id, agreement_version, base, "
                "commission, currency FROM commission_allocations WHERE order_id = $1",
                (order_id,),
            ),
            Statement(
                f"SELECT {_ACCRUAL_COLUMNS} FROM commission_accruals WHERE order_id = $1 "
                f"ORDER BY share_bps DESC, influencer_id",
                (order_id,),
            ),
        ]
    )
    if not allocation:
        raise NotFound("order_not_found", f"no commission is known for order {order_id!r}")
    live_id, brand_id, status, reason, detail, agreement_id, version, base, commission, currency = allocation[
        0
    ]
    parts = [_accrual(row) for row in accrual_rows]
    if not (principal.is_admin or principal.staff_of(brand_id)):
        parts = [p for p in parts if p.influencer_id == principal.subject]
        if not parts:
            raise Forbidden(
                "not_a_party", "only the selling brand's staff, the order's hosts and admins may see it"
            )
    return OrderCommissionView(
        order_id=order_id,
        live_id=live_id,
        brand_id=brand_id,
        status=status,
        reason=reason,
        detail=detail,
        agreement_id=agreement_id,
        agreement_version=version,
        base=None if base is None else _money(base, currency),
        commission=None if commission is None else _money(commission, currency),
        accruals=parts,
    )
