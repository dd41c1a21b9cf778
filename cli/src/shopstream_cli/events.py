"""Event history: export to files, backfill to Kafka."""

import typer

app = typer.Typer(no_args_is_help=True, help="Event history: export to files, backfill to Kafka.")
