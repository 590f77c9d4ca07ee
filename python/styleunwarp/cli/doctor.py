"""``styleunwarp doctor``: what is installed and what is missing."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--fiji", "fiji_dir", type=click.Path(file_okay=False), default=None, help="Fiji.app or ImageJ folder to check.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(fiji_dir: str | None, as_json: bool) -> None:
    """Report Python, torch, Java, ImageJ/Fiji and bUnwarpJ, and how to install what is missing.

    Exits with status 1 if a required piece is missing.
    """
    from ..doctor import format_report, run_checks

    checks = run_checks(fiji_dir)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        click.echo(format_report(checks))
    if any(c.required and not c.ok for c in checks):
        raise SystemExit(1)
