"""Projections: rebuild from zero, verify, build as of a moment."""

import typer

app = typer.Typer(no_args_is_help=True, help="Projections: rebuild from zero, verify, build as of a moment.")
