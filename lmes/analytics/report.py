"""A self-contained HTML page about chosen migrations, for people who will not open Jupyter.

One file, no external assets: the plots are inline SVG and the styles are in the page, so it
can be mailed, attached to a ticket or opened from a USB stick. Each migration gets its
diagnosis (what happened, where the time went, the ramp Nova applied, what looks wrong), its
phase timeline and, when progress was recorded, its memory curve against the downtime limit.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from lmes.analytics import load, plots
from lmes.analytics.files import replacing
from lmes.readmodels import migration_row
from lmes.replay.diagnosis import diagnose

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #1f77b4; }
section.migration { border-top: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f0f4f8; }
.diagnosis { background: #f8f8f8; padding: 0.5em 1em; border-left: 4px solid #1f77b4; }
.anomalies li { color: #8a1c1c; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
"""

# matplotlib's SVG carries RDF metadata naming remote vocabularies; the page needs none of it.
METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)

OVERVIEW_COLUMNS = [
    ("id", "id"),
    ("instance", "instance"),
    ("origin", "origin"),
    ("source_host", "source"),
    ("dest_host", "destination"),
    ("status", "status"),
    ("total_s", "total (s)"),
    ("downtime_ms", "downtime (ms)"),
]


def render(streams: Sequence[load.MigrationStream], *, title: str = "lmes migrations") -> str:
    """The whole page for `streams` (see `lmes.analytics.load.streams`)."""
    rows = [migration_row(s.migration, len(s.events)) for s in streams]
    frame = pd.DataFrame(rows)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{len(streams)} migration(s), report generated {generated}.</p>",
        _overview(rows),
    ]
    if len(frame) > 1:
        parts.append("<h2>Over time</h2>")
        parts.append(
            _figure(
                plots.migrations_gantt(frame),
                "Every migration from its request to its end: waiting (checks and queue), "
                "preparation on the destination, the memory copy and post-copy.",
            )
        )
    if len(frame) and (frame["status"] == "completed").sum() > 1:
        parts.append("<h2>Distributions</h2>")
        parts.append(
            _figure(
                plots.downtime_distribution(frame),
                "Guest downtime of the completed migrations, with its p50, p95 and p99.",
            )
        )
        parts.append(
            _figure(
                plots.total_time_distribution(frame),
                "Total time from request to end of the completed migrations.",
            )
        )
    for stream in streams:
        parts.append(_migration_section(stream))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(html: str, path: str | Path) -> Path:
    """Write the page whole or not at all."""
    with replacing(path) as out:
        out.write(html)
    return Path(path)


# ------------------------------------------------------------------ sections


def _overview(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in OVERVIEW_COLUMNS)
    body = []
    for row in rows:
        cells = []
        for column, _ in OVERVIEW_COLUMNS:
            value = row.get(column)
            if column == "id":
                cells.append(f'<td><a href="#m-{escape(value)}">{escape(value[:8])}</a></td>')
            else:
                cells.append(f"<td>{escape(_text(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="overview"><tr>{head}</tr>{"".join(body)}</table>'


def _migration_section(stream: load.MigrationStream) -> str:
    migration = stream.migration
    ident = str(migration.id)
    diagnosis = diagnose(migration, stream.events).as_dict()
    events = stream.events_frame()
    parts = [
        f'<section class="migration" id="m-{escape(ident)}">',
        f"<h2>{escape(migration.instance)}: {escape(_text(migration.source_host))} &rarr; "
        f"{escape(_text(migration.dest_host or migration.requested_dest))}</h2>",
        f"<p>migration <code>{escape(ident)}</code> ({escape(migration.origin.value)}), "
        f"requested {escape(_text(migration.requested_at))}</p>",
        _diagnosis_block(diagnosis),
        _figure(
            plots.phase_timeline(events),
            "Where the time went: phases on the source and destination hosts, "
            "with the downtime steps and other events marked.",
        ),
    ]
    if (events["event"] == "ProgressReported").any():
        parts.append(
            _figure(
                plots.memory_remaining(events),
                "Memory still to copy against the downtime limit Nova allowed: the guest can "
                "switch over once the remainder fits in the limit at the transfer rate.",
            )
        )
    parts.append("</section>")
    return "\n".join(parts)


def _diagnosis_block(diagnosis: dict[str, Any]) -> str:
    lines = [
        '<div class="diagnosis">',
        f"<p><strong>Outcome: {escape(diagnosis['outcome'])}</strong>"
        + (
            f" after {diagnosis['duration_s']:.1f} s"
            if diagnosis.get("duration_s") is not None
            else ""
        )
        + "</p>",
    ]
    failure = diagnosis.get("failure")
    if failure:
        lines.append(
            f"<p>Failure in {escape(_text(failure.get('phase')))}: "
            f"{escape(_text(failure.get('reason')))}</p>"
        )
    phases = diagnosis.get("phases") or {}
    if phases:
        head = "".join(f"<th>{escape(name)}</th>" for name in phases)
        cells = "".join(f"<td>{escape(_text(seconds))}</td>" for seconds in phases.values())
        lines.append(f"<p>Phases (s):</p><table><tr>{head}</tr><tr>{cells}</tr></table>")
    inferred = diagnosis.get("inferred")
    if inferred:
        lines.append(
            "<p>Downtime ramp: "
            + escape(
                f"{inferred['ramp_form']} ({inferred['era']}), live_migration_downtime "
                f"{inferred['downtime_ms']} ms, {inferred['steps']} steps, delay "
                f"{_text(inferred['delay_s'])} s/GiB, data_gb {_text(inferred['data_gb'])}"
            )
            + "</p>"
        )
    if diagnosis.get("downtime_steps"):
        steps = ", ".join(f"{_text(s)} s: {ms} ms" for s, ms in diagnosis["downtime_steps"])
        lines.append(f"<p>Downtime limits applied: {escape(steps)}</p>")
    rates = [
        ("transfer rate", diagnosis.get("transfer_rate_bytes_s")),
        ("dirty rate", diagnosis.get("dirty_rate_bytes_s")),
    ]
    known = [f"{name} {value / 2**20:.1f} MiB/s" for name, value in rates if value is not None]
    if known:
        lines.append(f"<p>{escape(', '.join(known))}</p>")
    anomalies = diagnosis.get("anomalies") or []
    if anomalies:
        items = "".join(f"<li>{escape(text)}</li>" for text in anomalies)
        lines.append(f'<p>Worth a look:</p><ul class="anomalies">{items}</ul>')
    else:
        lines.append("<p>Nothing unusual found.</p>")
    lines.append("</div>")
    return "\n".join(lines)


def _figure(fig: Figure, caption: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = METADATA.sub("", svg[svg.index("<svg") :])
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    return str(value)
