"""A diagnosis as text an operator reads in a terminal: a table, the timeline, the verdict."""

from __future__ import annotations

from datetime import datetime

from lmes.replay.diagnosis import MIB_BYTES, Diagnosis

PHASE_ORDER = (
    "checks",
    "queued",
    "pre_live_migration",
    "vif_wait",
    "memory_copy",
    "switchover",
    "post_copy",
    "post_migration",
    "rollback",
)
MAX_TIMELINE = 40


def render(diagnosis: Diagnosis, stored: str | None = None) -> str:
    d = diagnosis
    lines = [f"Migration {d.id}  ({d.outcome.upper()})"]
    rows = [
        ("instance", d.instance),
        ("hosts", f"{d.source_host or '?'} -> {d.dest_host or '?'}"),
        ("requests", ", ".join(d.request_ids) or "-"),
        ("started", _time(d.started_at)),
        ("ended", _time(d.ended_at) if d.ended_at else "- (no outcome in the logs)"),
        ("duration", _seconds(d.duration_s)),
    ]
    if stored:
        rows.append(("store", stored))
    lines += [f"  {name:<10} {value}" for name, value in rows]
    if d.phases:
        lines.append("  phases     (indented: parts of the phases above, on one host)")
        width = max(len(name) for name in d.phases) + 2
        for name in _ordered(d.phases):
            label = name if name in PHASE_ORDER else f"  {name}"
            lines.append(f"    {label:<{width}}  {_seconds(d.phases[name]):>10}")
    lines += _ramp_lines(d)
    lines += _progress_lines(d)
    if d.failure:
        lines.append(f"  failure    in {d.failure.get('phase')}: {d.failure.get('reason')}")
        if d.failure.get("traceback"):
            lines.append(f"             {d.failure['traceback']}")
    if d.anomalies:
        lines.append("  anomalies")
        lines += [f"    - {text}" for text in d.anomalies]
    if d.timeline:
        lines.append("  timeline")
        shown = (
            d.timeline
            if len(d.timeline) <= MAX_TIMELINE
            else (d.timeline[: MAX_TIMELINE // 2] + d.timeline[-MAX_TIMELINE // 2 :])
        )
        for index, entry in enumerate(shown):
            if len(d.timeline) > MAX_TIMELINE and index == MAX_TIMELINE // 2:
                lines.append(f"    … {len(d.timeline) - MAX_TIMELINE} more …")
            mark = "  (inferred)" if entry.inferred else ""
            lines.append(f"    {_time(entry.at)}  {entry.text}{mark}")
    return "\n".join(lines)


def _ramp_lines(d: Diagnosis) -> list[str]:
    lines = []
    if d.inferred.get("ramp_form"):
        i = d.inferred
        config = (
            f"live_migration_downtime={i['downtime_ms']} ms, _steps={i['steps']}, "
            f"_delay={i['delay_s'] if i['delay_s'] is not None else '?'} s/GiB, "
            f"data_gb={i['data_gb'] if i['data_gb'] is not None else '?'}"
        )
        caveat = (
            "" if not i.get("ambiguous") else " (another form or step count fits what was seen)"
        )
        lines.append(f"  ramp       {i['ramp_form']}: {i['era']}{caveat}")
        lines.append(f"             {config}")
    if d.planned_ramp:
        planned = " ".join(f"{ms}@{s}s" for s, ms in d.planned_ramp)
        lines.append(f"  downtime   planned {planned}")
    if d.downtime_steps:
        applied = ", ".join(f"{int(ms)} ms at {s:.0f} s" for s, ms in d.downtime_steps)
        lines.append(f"             applied {applied}")
    return lines


def _progress_lines(d: Diagnosis) -> list[str]:
    points = [p for p in d.progress if p.remaining_percent is not None]
    if not points:
        return []
    curve = " ".join(f"{p.remaining_percent}%@{p.elapsed_s:.0f}s" for p in points[:12])
    if len(points) > 12:
        curve += f" … {points[-1].remaining_percent}%@{points[-1].elapsed_s:.0f}s"
    lines = [f"  progress   memory remaining {curve}"]
    if d.transfer_rate_bytes_s is not None:
        dirty = (
            f", dirtied {d.dirty_rate_bytes_s / MIB_BYTES:.0f} MiB/s"
            if d.dirty_rate_bytes_s is not None
            else ""
        )
        lines.append(f"  rates      sent {d.transfer_rate_bytes_s / MIB_BYTES:.0f} MiB/s{dirty}")
    return lines


def _ordered(phases: dict[str, float]) -> list[str]:
    known = [p for p in PHASE_ORDER if p in phases]
    return known + [p for p in phases if p not in known]


def _time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if at else "-"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.2f} s"
