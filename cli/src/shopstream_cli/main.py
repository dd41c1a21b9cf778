"""The `shopstream` command."""

import typer

from shopstream_cli.demo import demo
from shopstream_cli.infra import app as infra_app

app = typer.Typer(no_args_is_help=True, help="Shopstream: local infrastructure, platform and demo.")
app.add_typer(infra_app, name="infra")
app.command()(demo)
