"""Read models of the commission service, built from its own store only.

- ``agreements``: every agreement and every version of it.
- ``ledger``: accruals (with what was reversed before and after release, so balances are sums),
  ledger entries in ledger order, issued statements, and each order's allocation outcome.

Times are stored as fixed-width UTC ISO-8601 text (``2025-05-01T20:25:15.020000Z``), which
sorts chronologically on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shopstream_contracts import REGISTRY
from shopstream_contracts.commission.v1 import (
    CommissionAccrued,
    CommissionAgreementSigned,
    CommissionReleased,
    CommissionReversed,
    StatementIssued,
)
from shopstream_eventstore import RecordedEvent
from shopstream_processing import Statement, Table, TableNames

from .events import OrderCommissionAllocated, OrderCommissionNotAllocated


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _insert(table: str, row: Mapping[str, Any], on_conflict: str = "") -> Statement:
    columns = ", ".join(row)
    values = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    return Statement(
        f"INSERT INTO {table} ({columns}) VALUES ({values}) {on_conflict}".rstrip(), tuple(row.values())
    )


class AgreementsProjection:
    name = "agreements"
    version = 1
    tables = (
        Table(
            "commission_agreements",
            "agreement_id text PRIMARY KEY, brand_id text NOT NULL, influencer_id text NOT NULL, "
            "current_version integer NOT NULL, signed_at text NOT NULL",
            indexes=("brand_id", "influencer_id"),
        ),
        Table(
            "commission_agreement_versions",
            "agreement_id text NOT NULL, version integer NOT NULL, rate_bps integer NOT NULL, "
            "holdback_days integer NOT NULL, cohost_shares text NOT NULL, effective_from text NOT NULL, "
            "signed_by text NOT NULL, signed_at text NOT NULL, PRIMARY KEY (agreement_id, version)",
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        statements: list[Statement] = []
        for recorded in events:
            if recorded.type != CommissionAgreementSigned.contract.type:
                continue
            event = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
            assert isinstance(event, CommissionAgreementSigned)
            signed_at = timestamp(event.occurred_at)
            agreement = {
                "agreement_id": event.agreement_id,
                "brand_id": event.brand_id,
                "influencer_id": event.influencer_id,
                "current_version": event.agreement_version,
                "signed_at": signed_at,
            }
            version = {
                "agreement_id": event.agreement_id,
                "version": event.agreement_version,
                "rate_bps": event.rate_bps,
                "holdback_days": event.holdback_days,
                "cohost_shares": json.dumps([s.model_dump() for s in event.cohost_shares]),
                "effective_from": timestamp(event.effective_from),
                "signed_by": event.signed_by,
                "signed_at": signed_at,
            }
            statements += [
                _insert(
                    tables["commission_agreements"],
                    agreement,
                    "ON CONFLICT (agreement_id) DO UPDATE SET current_version = excluded.current_version",
                ),
                _insert(tables["commission_agreement_versions"], version),
            ]
        return statements


_LEDGER_TYPES = {
    CommissionAccrued.contract.type,
    CommissionReleased.contract.type,
    CommissionReversed.contract.type,
    StatementIssued.contract.type,
}
_ALLOCATION_TYPES = {OrderCommissionAllocated.type_name, OrderCommissionNotAllocated.type_name}


class LedgerProjection:
    name = "ledger"
    version = 1
    tables = (
        Table(
            "commission_accruals",
            "accrual_id text PRIMARY KEY, influencer_id text NOT NULL, order_id text NOT NULL, "
            "brand_id text NOT NULL, live_id text, agreement_id text NOT NULL, "
            "agreement_version integer NOT NULL, rate_bps integer NOT NULL, share_bps integer NOT NULL, "
            "base bigint NOT NULL, currency text NOT NULL, amount bigint NOT NULL, "
            "reversed_before_release bigint NOT NULL, reversed_after_release bigint NOT NULL, "
            "released bigint, status text NOT NULL, hold_until text NOT NULL, accrued_at text NOT NULL, "
            "released_at text",
            indexes=("influencer_id, accrued_at", "order_id", "status, hold_until"),
        ),
        Table(
            "commission_ledger_entries",
            "position bigint PRIMARY KEY, influencer_id text NOT NULL, kind text NOT NULL, "
            "entry_id text NOT NULL, accrual_id text NOT NULL, order_id text NOT NULL, "
            "amount bigint NOT NULL, currency text NOT NULL, reason text, refund_id text, "
            "occurred_at text NOT NULL",
            indexes=("influencer_id, position", "influencer_id, occurred_at"),
        ),
        Table(
            "commission_statements",
            "statement_id text PRIMARY KEY, influencer_id text NOT NULL, period_start text NOT NULL, "
            "period_end text NOT NULL, currency text NOT NULL, opening_balance bigint NOT NULL, "
            "accrued bigint NOT NULL, reversed bigint NOT NULL, released bigint NOT NULL, "
            "closing_balance bigint NOT NULL, entries bigint NOT NULL, issued_at text NOT NULL",
            indexes=("influencer_id, period_start",),
        ),
        Table(
            "commission_allocations",
            "order_id text PRIMARY KEY, live_id text NOT NULL, brand_id text NOT NULL, agreement_id text, "
            "agreement_version integer, "
            "status text NOT NULL, reason text, detail text, base bigint, commission bigint, currency text, "
            "hold_until text",
        ),
    )

    def apply(self, events: Sequence[RecordedEvent], tables: TableNames) -> Sequence[Statement]:
        statements: list[Statement] = []
        for recorded in events:
            if recorded.type in _LEDGER_TYPES:
                statements += self._ledger(recorded, tables)
            elif recorded.type in _ALLOCATION_TYPES:
                statements.append(self._allocation(recorded, tables["commission_allocations"]))
        return statements

    @staticmethod
    def _allocation(recorded: RecordedEvent, table: str) -> Statement:
        if recorded.type == OrderCommissionAllocated.type_name:
            allocated = OrderCommissionAllocated.model_validate(recorded.data)
            return _insert(
                table,
                {
                    "order_id": allocated.order_id,
                    "live_id": allocated.live_id,
                    "brand_id": allocated.brand_id,
                    "agreement_id": allocated.agreement_id,
                    "agreement_version": allocated.agreement_version,
                    "status": "allocated",
                    "base": allocated.base.amount,
                    "commission": allocated.commission.amount,
                    "currency": allocated.base.currency,
                    "hold_until": timestamp(allocated.hold_until),
                },
            )
        refused = OrderCommissionNotAllocated.model_validate(recorded.data)
        return _insert(
            table,
            {
                "order_id": refused.order_id,
                "live_id": refused.live_id,
                "brand_id": refused.brand_id,
                "agreement_id": refused.agreement_id,
                "status": "not_allocated",
                "reason": refused.reason,
                "detail": refused.detail,
            },
        )

    @staticmethod
    def _ledger(recorded: RecordedEvent, tables: TableNames) -> list[Statement]:
        accruals = tables["commission_accruals"]
        event = REGISTRY.decode(recorded.type, recorded.data_version, recorded.data)
        if not isinstance(
            event, CommissionAccrued | CommissionReleased | CommissionReversed | StatementIssued
        ):
            return []
        at = timestamp(event.occurred_at)
        if isinstance(event, StatementIssued):
            return [
                _insert(
                    tables["commission_statements"],
                    {
                        "statement_id": event.statement_id,
                        "influencer_id": event.influencer_id,
                        "period_start": timestamp(event.period_start),
                        "period_end": timestamp(event.period_end),
                        "currency": event.closing_balance.currency,
                        "opening_balance": event.opening_balance.amount,
                        "accrued": event.accrued.amount,
                        "reversed": event.reversed.amount,
                        "released": event.released.amount,
                        "closing_balance": event.closing_balance.amount,
                        "entries": event.entries,
                        "issued_at": at,
                    },
                )
            ]
        entry: dict[str, Any] = {
            "position": recorded.position,
            "influencer_id": event.influencer_id,
            "accrual_id": event.accrual_id,
            "order_id": event.order_id,
            "amount": event.amount.amount,
            "currency": event.amount.currency,
            "occurred_at": at,
        }
        if isinstance(event, CommissionAccrued):
            accrual = {
                "accrual_id": event.accrual_id,
                "influencer_id": event.influencer_id,
                "order_id": event.order_id,
                "brand_id": event.brand_id,
                "live_id": event.live_id,
                "agreement_id": event.agreement_id,
                "agreement_version": event.agreement_version,
                "rate_bps": event.rate_bps,
                "share_bps": event.share_bps,
                "base": event.base.amount,
                "currency": event.amount.currency,
                "amount": event.amount.amount,
                "reversed_before_release": 0,
                "reversed_after_release": 0,
                "status": "held",
                "hold_until": timestamp(event.hold_until),
                "accrued_at": at,
            }
            entry |= {"kind": "accrued", "entry_id": event.accrual_id}
            return [_insert(accruals, accrual), _insert(tables["commission_ledger_entries"], entry)]
        if isinstance(event, CommissionReleased):
            entry |= {"kind": "released", "entry_id": event.accrual_id}
            return [
                Statement(
                    f"UPDATE {accruals} SET released = $1, status = 'released', released_at = $2 "
                    f"WHERE accrual_id = $3",
                    (event.amount.amount, at, event.accrual_id),
                    expect_rows=1,
                ),
                _insert(tables["commission_ledger_entries"], entry),
            ]
        entry |= {
            "kind": "reversed",
            "entry_id": event.reversal_id,
            "reason": event.reason,
            "refund_id": event.refund_id,
        }
        # Before release a reversal reduces what is held (and closes the accrual once nothing is
        # left of it); after release it reduces what is payable.
        return [
            Statement(
                # $1 is cast so PostgreSQL infers one type for its three uses.
                f"UPDATE {accruals} SET "
                f"reversed_before_release = reversed_before_release "
                f"+ CASE WHEN released IS NULL THEN CAST($1 AS bigint) ELSE 0 END, "
                f"reversed_after_release = reversed_after_release "
                f"+ CASE WHEN released IS NULL THEN 0 ELSE CAST($1 AS bigint) END, "
                f"status = CASE WHEN released IS NULL "
                f"AND amount - reversed_before_release - CAST($1 AS bigint) = 0 "
                f"THEN 'reversed' ELSE status END "
                f"WHERE accrual_id = $2",
                (event.amount.amount, event.accrual_id),
                expect_rows=1,
            ),
            _insert(tables["commission_ledger_entries"], entry),
        ]


PROJECTIONS = (AgreementsProjection(), LedgerProjection())
