"""`lmes list`, `lmes show ID` and `lmes export`: reading what the store holds."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from lmes.cli.common import (
    add_store_argument,
    format_table,
    print_json,
    store_from_args,
    to_jsonable,
)
from lmes.domain.status import Origin, Status
from lmes.errors import UserError
from lmes.readmodels import event_rows, migration_row, migrations_frame

LIST_COLUMNS = [
    "id",
    "origin",
    "instance",
    "source_host",
    "dest_host",
    "status",
    "requested_at",
    "total_s",
    "downtime_ms",
]


def register(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("list", help="migrations in the store")
    _add_filters(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_store_argument(listing)
    listing.set_defaults(func=run_list)

    show = sub.add_parser("show", help="one migration's events as a timeline")
    show.add_argument("id", help="migration id, or an unambiguous prefix of one")
    show.add_argument("--json", action="store_true", help="print the summary and events as JSON")
    add_store_argument(show)
    show.set_defaults(func=run_show)

    export = sub.add_parser("export", help="events as JSON lines or CSV")
    _add_filters(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    add_store_argument(export)
    export.set_defaults(func=run_export)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--origin", choices=[o.value for o in Origin])
    parser.add_argument("--status", choices=[s.value for s in Status])
    parser.add_argument("--instance")
    parser.add_argument("--host", help="source or destination host")
    parser.add_argument("--since", type=_time, metavar="ISO-TIME")
    parser.add_argument("--until", type=_time, metavar="ISO-TIME")


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _filtered(args: argparse.Namespace):
    store = store_from_args(args)
    frame = migrations_frame(
        store,
        origin=args.origin,
        status=args.status,
        instance=args.instance,
        host=args.host,
        since=args.since,
        until=args.until,
    )
    return store, frame


def run_list(args: argparse.Namespace) -> int:
    _, frame = _filtered(args)
    rows = frame.to_dict("records")
    if args.json:
        print_json(rows)
    elif not rows:
        print("no migrations in the store match")
    else:
        for row in rows:
            row["id"] = row["id"][:8]
        print(format_table(rows, LIST_COLUMNS))
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    migration = store.migration(args.id)
    events = event_rows(store, [str(migration.id)])
    summary = migration_row(migration, len(events))
    if args.json:
        print_json({"migration": summary, "events": events})
        return 0
    print(f"migration {migration.id}  ({migration.origin.value})")
    print(
        f"instance {migration.instance}: {migration.source_host or '?'} -> "
        f"{migration.dest_host or migration.requested_dest or '?'}, status {migration.status.value}"
    )
    start = migration.requested_at
    for event in events:
        offset = (event["at"] - start).total_seconds()
        print(
            f"  {event['at']:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f"  +{offset:9.3f}s  "
            f"{event['event']:<26} {_describe(event)}"
        )
    if migration.failure:
        print(f"failure: {migration.failure.get('phase')}: {migration.failure.get('reason')}")
    return 0


def _describe(event: dict[str, Any]) -> str:
    fields = {
        k: v
        for k, v in event.items()
        if k not in ("migration_id", "version", "event", "at") and v not in (None, [], {}, "")
    }
    return ", ".join(f"{k}={_short(v)}" for k, v in fields.items())


def _short(value: Any) -> str:
    text = json.dumps(to_jsonable(value)) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def run_export(args: argparse.Namespace) -> int:
    store, frame = _filtered(args)
    events = event_rows(store, frame["id"].tolist())
    if args.output:
        path = Path(args.output)
        tmp = path.with_name(path.name + ".partial")
        try:
            with tmp.open("w", newline="") as out:
                _write_events(events, args.format, out)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write {path}: {exc.strerror}") from None
    else:
        _write_events(events, args.format, sys.stdout)
    return 0


def _write_events(events: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    records = [to_jsonable(r) for r in events]
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record) + "\n")
        return
    columns = list(dict.fromkeys(k for record in records for k in record))
    writer = csv.DictWriter(out, fieldnames=columns or ["migration_id", "version", "event", "at"])
    writer.writeheader()
    for record in records:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in record.items()}
        )
