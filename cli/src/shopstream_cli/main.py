"""The `shopstream` command."""

import typer

app = typer.Typer(no_args_is_help=True, help="Shopstream: local infrastructure, platform and demo.")
