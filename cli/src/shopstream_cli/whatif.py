"""What-if: replay past sales through a proposed agreement, writing nothing."""

import typer

app = typer.Typer(
    no_args_is_help=True, help="What-if: replay past sales through a proposed agreement, writing nothing."
)
