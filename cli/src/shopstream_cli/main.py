"""The `shopstream` command."""

import typer

from shopstream_cli.demo import demo, demo_backbone
from shopstream_cli.infra import app as infra_app
from shopstream_cli.tokens import app as token_app
from shopstream_cli.up import up

app = typer.Typer(no_args_is_help=True, help="Shopstream: local infrastructure, platform and demo.")
app.add_typer(infra_app, name="infra")
app.add_typer(token_app, name="token")
app.command()(up)
app.command()(demo)
app.command("demo-backbone")(demo_backbone)
