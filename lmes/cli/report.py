"""`lmes report [ID…] --html FILE`: the diagnosis and plots of migrations as one HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmes.analytics import load, report
from lmes.cli.common import add_store_argument, store_from_args
from lmes.domain.status import Origin, Status
from lmes.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="a self-contained HTML page with the diagnosis and plots of migrations",
        description="Render the diagnosis and plots of the chosen migrations (all that match "
        "the filters when no ID is given) into one HTML file with no external assets.",
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="migration id or unambiguous prefix")
    parser.add_argument("--origin", choices=[o.value for o in Origin])
    parser.add_argument("--status", choices=[s.value for s in Status])
    parser.add_argument("--instance")
    parser.add_argument("--host", help="source or destination host")
    parser.add_argument("--html", required=True, metavar="FILE", help="write the page here")
    parser.add_argument("--title", default="lmes migrations", help="the page's title")
    add_store_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = Path(args.html)
    if target.is_dir():
        raise UserError(f"{target} is a folder: give a file name for the report")
    if not target.parent.is_dir():
        raise UserError(f"cannot write {target}: folder {target.parent} does not exist")
    store = store_from_args(args)
    ids = [str(store.resolve(i)) for i in args.ids] if args.ids else None
    chosen = load.migrations(
        store,
        ids=ids,
        origin=args.origin,
        status=args.status,
        instance=args.instance,
        host=args.host,
    )
    if chosen.empty:
        raise UserError("no migrations in the store match: nothing to report")
    streams = load.streams(store, chosen["id"].tolist())
    html = report.render(streams, title=args.title)
    try:
        report.write(html, target)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror}") from None
    print(f"wrote {target}: {len(streams)} migration(s)")
    return 0
