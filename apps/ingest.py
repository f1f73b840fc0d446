"""`mmagent ingest PATH... [--collection NAME]`: add documents to the knowledge base.

Progress goes to stderr (tqdm), the summary to stdout. Files that cannot be read are listed and
skipped; the exit status is 1 only when nothing at all could be ingested.
"""

from __future__ import annotations

import json

import click

from apps.errors import UserError, one_line


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--collection", default="default", show_default=True, metavar="NAME", help="Knowledge-base collection to add to.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(paths: tuple[str, ...], collection: str, as_json: bool, quiet: bool) -> None:
    """Add files and folders (.txt .md .html .pdf .docx) to the knowledge base.

    Unchanged files are skipped; a changed file replaces its old chunks.
    """
    from agent.config import load_settings
    from memory.knowledge import KnowledgeBase

    settings = load_settings()
    kb = KnowledgeBase(settings)
    try:
        report = kb.ingest(paths, collection, progress=not quiet and not as_json)
    except (RuntimeError, ConnectionError, OSError) as exc:
        raise UserError(f"cannot ingest into the {kb.store.where}: {exc}") from None
    finally:
        kb.close()
    if as_json:
        click.echo(json.dumps(report.model_dump(), ensure_ascii=False))
    else:
        for item in report.files:
            if item.reason:  # why a file was skipped, or how one cut short by a crash was repaired
                click.echo(f"{'skipped' if item.status == 'skipped' else 'repaired'} {item.path}: {one_line(item.reason)}", err=True)
        click.echo(report.summary())
    if report.files and len(report.skipped) == len(report.files):
        raise UserError(f"nothing ingested: all {len(report.files)} file(s) were skipped")
    if not report.files:
        raise UserError("nothing to ingest: no supported files (.txt .md .html .pdf .docx) under the given paths")
