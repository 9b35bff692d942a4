"""Arguments and output helpers shared by the subcommands that read or write the store."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from uuid import UUID

from lmes.store import MigrationStore, default_store_url, open_store


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="event store (default: $LMES_STORE, else a SQLite file in $LMES_HOME or ./lmes-data)",
    )


def store_from_args(args: argparse.Namespace) -> MigrationStore:
    return open_store(getattr(args, "store", None) or default_store_url())


def to_jsonable(value: Any) -> Any:
    """Plain JSON for events and frames: times as ISO 8601, ids as strings, NaN as null."""
    if isinstance(value, datetime):
        return None if str(value) == "NaT" else value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def print_json(value: Any) -> None:
    json.dump(to_jsonable(value), sys.stdout, indent=2)
    sys.stdout.write("\n")


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table, for terminals and for logs pasted into tickets."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return "-" if str(value) == "NaT" else value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
