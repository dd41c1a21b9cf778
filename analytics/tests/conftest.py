"""The recorded history every analysts' test replays: the real platform (Kafka and the five
services as processes, SQLite stores) runs the demo's live sale a few times while an observer
records what the read APIs showed; then the services stop and their stores stay on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from shopstream_cli.platform import Platform
from shopstream_cli.sale import SaleReport, run_live_sale

from .history import Observer, RecordedHistory, pinned_down

SALES = 2
BUYERS = 40
DEAL_UNITS = 10
BANNED_WORDS = {"SHOPSTREAM_CHAT_BANNED_WORDS": "counterfeit,scam,replica"}


@pytest.fixture(scope="session")
def recorded_history(tmp_path_factory: pytest.TempPathFactory) -> RecordedHistory:
    workdir = tmp_path_factory.mktemp("recorded-history")
    platform = Platform(workdir, clock_control=True, env=BANNED_WORDS)
    try:
        platform.start()
        urls = {name: service.url for name, service in platform.services.items()}
        reports, observer = asyncio.run(_sales(urls))
    finally:
        platform.stop()
    template = f"sqlite:///{workdir / 'data'}/{{service}}.sqlite"
    observations = asyncio.run(pinned_down(observer.observations, template))
    return RecordedHistory(
        workdir=Path(workdir),
        store_url_template=template,
        live_ids=[report.ids.live_id for report in reports],
        reports=reports,
        observations=observations,
    )


async def _sales(urls: dict[str, str]) -> tuple[list[SaleReport], Observer]:
    reports: list[SaleReport] = []
    async with httpx.AsyncClient(timeout=30) as client:
        observer = Observer(urls, client)
        for n in range(SALES):
            run = f"rec{n}"
            report = await run_live_sale(
                urls, buyers=BUYERS, deal_units=DEAL_UNITS, timeout=60, on_phase=observer.hook(run), run=run
            )
            assert report.reconciled, report.checks.failing()
            reports.append(report)
        # The end state too: the last sale's report phase starts before its statements settle.
        await observer.hook(reports[-1].ids.run)("done")
    return reports, observer
