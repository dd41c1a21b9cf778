"""Reports over the event history: the live black-box recorder."""

import typer

app = typer.Typer(no_args_is_help=True, help="Reports over the event history: the live black-box recorder.")
