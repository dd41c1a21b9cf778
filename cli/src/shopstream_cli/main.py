"""The `shopstream` command."""

import typer

from shopstream_cli.demo import demo, demo_backbone
from shopstream_cli.events import app as events_app
from shopstream_cli.infra import app as infra_app
from shopstream_cli.projections import app as projections_app
from shopstream_cli.report import app as report_app
from shopstream_cli.tokens import app as token_app
from shopstream_cli.up import up
from shopstream_cli.whatif import app as whatif_app

app = typer.Typer(
    no_args_is_help=True, help="Shopstream: local infrastructure, platform, demo and the analysts' tools."
)
app.add_typer(infra_app, name="infra")
app.add_typer(token_app, name="token")
app.add_typer(events_app, name="events")
app.add_typer(projections_app, name="projections")
app.add_typer(report_app, name="report")
app.add_typer(whatif_app, name="whatif")
app.command()(up)
app.command()(demo)
app.command("demo-backbone")(demo_backbone)
