"""Command handling: which stream each command goes to, and the policy's multi-ledger steps.

Streams: ``agreement-<agreement_id>``, ``allocation-<order_id>`` (internal: who earns what on an
order) and ``account-<influencer_id>`` (the ledger, published on the account topic).

An order's commission touches several streams (the allocation, then one ledger per host), so
each step is a command of its own whose id is derived from the policy's command id and the
influencer: re-running the policy after a crash at any point redoes only what is missing.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from shopstream_eventstore import RecordedEvent
from shopstream_observability import get_logger
from shopstream_processing import IssuedCommand
from shopstream_service.clock import Clock
from shopstream_service.commands import CommandHandler, Outcome
from shopstream_service.domain import DomainError

from .commands import (
    AccountCommand,
    AccrueOrderCommission,
    AllocateOrderCommission,
    AmendAgreement,
    IssueStatement,
    OrderPolicyCommand,
    ReleaseCommission,
    ReverseCommission,
    ReverseOrderCommission,
    SignAgreement,
)
from .domain import (
    AccountDecider,
    AccountState,
    AgreementDecider,
    OrderCommissionDecider,
    OrderCommissionState,
    accrual_commands,
)
from .events import OrderCommissionAllocated
from .values import Agreement

log = get_logger(__name__)

C = TypeVar("C")

AGREEMENTS = AgreementDecider()
ALLOCATIONS = OrderCommissionDecider()
ACCOUNTS = AccountDecider()


def agreement_stream(agreement_id: str) -> str:
    return f"agreement-{agreement_id}"


def allocation_stream(order_id: str) -> str:
    return f"allocation-{order_id}"


def account_stream(influencer_id: str) -> str:
    return f"account-{influencer_id}"


def _step(issued: IssuedCommand[Any], command: C, part: str) -> IssuedCommand[C]:
    """One step of a policy command: its own id (derived from the policy's), the same cause."""
    return IssuedCommand(command, uuid.uuid5(issued.command_id, part), issued.cause)


class CommissionHandlers:
    def __init__(self, handler: CommandHandler, clock: Clock) -> None:
        self._handler = handler
        self._clock = clock

    # Agreements ---------------------------------------------------------------------------------

    async def sign(self, command: SignAgreement, *, command_id: uuid.UUID, correlation_id: str) -> Outcome:
        return await self._handler.execute(
            AGREEMENTS,
            agreement_stream(command.agreement_id),
            command,
            command_id=command_id,
            correlation_id=correlation_id,
        )

    async def amend(self, command: AmendAgreement, *, command_id: uuid.UUID, correlation_id: str) -> Outcome:
        return await self._handler.execute(
            AGREEMENTS,
            agreement_stream(command.agreement_id),
            command,
            command_id=command_id,
            correlation_id=correlation_id,
        )

    async def agreement(self, agreement_id: str) -> Agreement | None:
        state, _ = await self._handler.load(AGREEMENTS, agreement_stream(agreement_id))
        return state

    # Ledger -------------------------------------------------------------------------------------

    async def issue_statement(
        self, command: IssueStatement, *, command_id: uuid.UUID, correlation_id: str | None = None
    ) -> Outcome:
        return await self._handler.execute(
            ACCOUNTS,
            account_stream(command.influencer_id),
            command,
            command_id=command_id,
            correlation_id=correlation_id,
        )

    async def release(self, influencer_id: str, accrual_id: str, *, command_id: uuid.UUID) -> Outcome:
        command = ReleaseCommission(influencer_id, accrual_id, self._clock.now())
        return await self._handler.execute(
            ACCOUNTS, account_stream(influencer_id), command, command_id=command_id
        )

    async def account(self, influencer_id: str) -> AccountState:
        state, _ = await self._handler.load(ACCOUNTS, account_stream(influencer_id))
        return state

    # The order policy ---------------------------------------------------------------------------

    async def on_order(self, issued: IssuedCommand[OrderPolicyCommand]) -> None:
        command = issued.command
        if isinstance(command, AccrueOrderCommission):
            await self._accrue(command, issued)
        else:
            await self._reverse(command, issued)

    async def _accrue(
        self, command: AccrueOrderCommission, issued: IssuedCommand[OrderPolicyCommand]
    ) -> None:
        agreement = await self.agreement(command.agreement_id) if command.agreement_id else None
        allocate = AllocateOrderCommission(
            order_id=command.order_id,
            live_id=command.live_id,
            brand_id=command.brand_id,
            agreement_id=command.agreement_id,
            host_ids=command.host_ids,
            base=command.base,
            sold_at=command.sold_at,
            agreement=agreement,
            at=self._clock.now(),
        )
        stream = allocation_stream(command.order_id)
        await self._handler.execute_issued(ALLOCATIONS, stream, _step(issued, allocate, "allocate"))
        # Read back what is stored: after a crash the allocation may be an earlier run's.
        allocation = await self._allocation(command.order_id)
        if not isinstance(allocation, OrderCommissionAllocated):
            log.info("commission.not_allocated", order_id=command.order_id, outcome=repr(allocation))
            return
        for accrue in accrual_commands(allocation, self._clock.now()):
            command_: AccountCommand = accrue
            step = _step(issued, command_, f"accrue/{accrue.influencer_id}")
            await self._settle(account_stream(accrue.influencer_id), step)

    async def _reverse(
        self, command: ReverseOrderCommission, issued: IssuedCommand[OrderPolicyCommand]
    ) -> None:
        allocation = await self._allocation(command.order_id)
        if not isinstance(allocation, OrderCommissionAllocated):
            return  # the order earned nothing: nothing to take back
        for part in allocation.parts:
            # The reversal id is the step's command id: the same refund delivered twice is one reversal.
            step_id = uuid.uuid5(issued.command_id, f"reverse/{part.influencer_id}")
            reverse: AccountCommand = ReverseCommission(
                influencer_id=part.influencer_id,
                order_id=command.order_id,
                reversal_id=str(step_id),
                reason=command.reason,
                at=self._clock.now(),
                refund_id=command.refund_id,
                total_refunded=command.total_refunded,
                order_total=command.order_total,
                fully_refunded=command.fully_refunded,
            )
            await self._settle(
                account_stream(part.influencer_id), IssuedCommand(reverse, step_id, issued.cause)
            )

    async def _allocation(self, order_id: str) -> OrderCommissionState:
        state, _ = await self._handler.load(ALLOCATIONS, allocation_stream(order_id))
        return state

    async def _settle(self, stream: str, step: IssuedCommand[AccountCommand]) -> None:
        """Execute a ledger step of the policy; a business refusal is logged, not retried forever
        (it cannot succeed on a retry, and the policy must go on with the next order)."""
        try:
            await self._handler.execute_issued(ACCOUNTS, stream, step)
        except DomainError as refusal:
            log.error(
                "commission.policy_step_refused",
                stream=stream,
                code=refusal.code,
                reason=refusal.message,
                cause=_describe(step.cause),
            )


def _describe(event: RecordedEvent) -> str:
    return f"{event.type} {event.event_id}"
