"""A relay or an inbox as a process of its own, so fault tests can kill -9 it.

    python -m shopstream_testing.pipeline_proc relay --sqlite A.db --bootstrap H:P --service orders
    python -m shopstream_testing.pipeline_proc inbox --sqlite B.db --bootstrap H:P --service commission \
        --topic shopstream.orders.order --group g1
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from shopstream_contracts import REGISTRY
from shopstream_eventstore import EventStore
from shopstream_eventstore.postgres import PostgresEventStore
from shopstream_eventstore.sqlite import SqliteEventStore
from shopstream_messaging.pipeline import run_inbox, run_relay
from shopstream_observability import configure_logging


async def _open(args: argparse.Namespace) -> EventStore:
    if args.sqlite:
        return await SqliteEventStore.open(args.sqlite)
    return await PostgresEventStore.open(args.postgres, args.schema)


async def main(args: argparse.Namespace) -> None:
    configure_logging(f"{args.service}-{args.role}")
    store = await _open(args)
    if args.role == "relay":
        job = run_relay(store, args.bootstrap, args.service, REGISTRY, batch_size=args.batch)
    else:
        job = run_inbox(
            store,
            args.bootstrap,
            args.service,
            REGISTRY,
            args.topic,
            group_id=args.group,
            max_records=args.batch,
        )
    task = asyncio.create_task(job)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await store.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["relay", "inbox"])
    parser.add_argument("--sqlite")
    parser.add_argument("--postgres")
    parser.add_argument("--schema", default="shopstream")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--group")
    parser.add_argument("--batch", type=int, default=1000, help="relay batch size / inbox max records")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
