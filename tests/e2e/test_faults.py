"""kill -9 a service in the middle of a live sale and restart it: the end state must be the
same as without the kill — no oversell, no lost or doubled order or accrual."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shopstream_cli.platform import Platform, running_platform
from shopstream_cli.sale import SaleReport, run_live_sale
from shopstream_service.auth import mint_token
from shopstream_service.settings import ServiceSettings
from shopstream_testing.waiting import wait_until_async

pytestmark = pytest.mark.faults

DEAL_UNITS = 20
BUYERS = 80


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path, store="sqlite", clock_control=True) as running:
        yield running


def _admin() -> dict[str, str]:
    settings = ServiceSettings()
    assert settings.jwt_secret is not None
    token = mint_token(
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        subject="usr_fault_admin",
        roles=["admin"],
    )
    return {"Authorization": f"Bearer {token}"}


async def _confirmed_orders(platform: Platform) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"{platform.url('orders')}/stats/orders", headers=_admin())
    if reply.status_code != 200:
        return 0
    counts: dict[str, int] = reply.json().get("by_status", {})
    return int(counts.get("confirmed", 0))


def _kill_and_restart_when(
    platform: Platform, service: str, phase: str, ready: Callable[[], Awaitable[bool]]
) -> tuple[Callable[[str], Awaitable[None]], list[str]]:
    """A phase hook that, once ``phase`` starts and ``ready()`` holds, kills ``service`` with
    SIGKILL and starts it again while the sale goes on."""
    happened: list[str] = []
    background: list[asyncio.Task[None]] = []

    async def strike() -> None:
        await wait_until_async(ready, timeout=120, interval=0.05, message=f"the moment to kill {service}")
        platform.kill9(service)
        happened.append(f"killed {service}")
        await asyncio.get_running_loop().run_in_executor(None, platform.restart, service)
        happened.append(f"restarted {service}")

    async def on_phase(name: str) -> None:
        if name == phase:
            background.append(asyncio.create_task(strike()))
        elif background and name == "report":
            await background[0]

    return on_phase, happened


def _assert_same_end_state_as_without_a_kill(report: SaleReport) -> None:
    assert report.checks.failing() == {}, report.checks
    assert report.reconciled
    assert report.deal.units_sold == DEAL_UNITS
    assert report.deal.orders_confirmed >= DEAL_UNITS // 2


async def test_kill_9_catalog_in_the_middle_of_the_flash_deal(platform: Platform) -> None:
    async def some_reserved() -> bool:
        return await _confirmed_orders(platform) >= 3

    on_phase, happened = _kill_and_restart_when(platform, "catalog", "flash_sale", some_reserved)
    urls = {name: service.url for name, service in platform.services.items()}
    report = await run_live_sale(urls, buyers=BUYERS, deal_units=DEAL_UNITS, on_phase=on_phase)
    assert happened == ["killed catalog", "restarted catalog"]
    _assert_same_end_state_as_without_a_kill(report)


async def test_kill_9_commission_mid_sale(platform: Platform) -> None:
    async def some_confirmed() -> bool:
        return await _confirmed_orders(platform) >= 5

    on_phase, happened = _kill_and_restart_when(platform, "commission", "flash_sale", some_confirmed)
    urls = {name: service.url for name, service in platform.services.items()}
    report = await run_live_sale(urls, buyers=BUYERS, deal_units=DEAL_UNITS, on_phase=on_phase)
    assert happened == ["killed commission", "restarted commission"]
    _assert_same_end_state_as_without_a_kill(report)
