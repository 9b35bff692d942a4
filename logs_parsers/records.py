"""The values the reader produces: one `Record` per logged message, and the counts of what it read.

A record keeps both what the line said (the raw time texts) and what it means (a UTC
timestamp when the zone is known), because syslog and oslo clocks can disagree by hours and
only the replay layer, which sees every host, can reconcile them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime


@dataclass(slots=True)
class Record:
    """One log message with the lines that continue it (a traceback, a multi-line message)."""

    source: str
    """The file (or stream name) the record was read from."""
    line_number: int
    """1-based line number of the record's first line in `source`."""
    message: str
    timestamp: datetime | None = None
    """The oslo (or JSON) time, timezone-aware UTC; None when the line carries no such time."""
    time_text: str | None = None
    """The oslo/JSON time exactly as written (local or UTC, as the service was configured)."""
    wrapper_time_text: str | None = None
    """The time of the syslog/journald or kubectl prefix, as written (syslog omits the year)."""
    wrapper_timestamp: datetime | None = None
    """The prefix time in UTC when the prefix states its zone (kubectl, RFC 3339 syslog)."""
    host: str | None = None
    service: str | None = None
    pid: int | None = None
    level: str | None = None
    logger: str | None = None
    request_id: str | None = None
    global_request_id: str | None = None
    user: str | None = None
    project: str | None = None
    instance_uuid: str | None = None
    function: str | None = None
    """The `funcName` of a DEBUG line's location suffix (stripped from `message`)."""
    traceback: list[str] = field(default_factory=list)
    """Continuation lines attached to this record, in order, without their prefixes."""
    line_format: str = "oslo"
    """`oslo` (text formatter) or `json` (oslo.log JSON formatter)."""


@dataclass(slots=True)
class FileStats:
    """What happened to every line of one source. Each line is counted in exactly one bucket
    besides `lines_read`: records + continuation + blank + other_program + unparseable + filtered
    == lines_read."""

    source: str
    bytes_read: int = 0
    lines_read: int = 0
    records: int = 0
    continuation_lines: int = 0
    """Lines attached to the preceding record (tracebacks, multi-line messages)."""
    blank_lines: int = 0
    other_program_lines: int = 0
    """Syslog/journald lines of other programs (libvirtd, systemd, kernel, ...)."""
    unparseable_lines: int = 0
    """Lines in no known shape with no record to attach to, and binary garbage."""
    filtered_lines: int = 0
    """Lines the relevance prefilter skipped without parsing (only with `only_relevant`)."""
    dropped_continuation_lines: int = 0
    """Continuation lines beyond the per-record cap (also counted in `continuation_lines`)."""
    read_error: str | None = None
    """Why reading stopped early (a compressed file cut short), or None."""

    def add(self, other: FileStats) -> None:
        """Add another source's counts (the text fields are not summed)."""
        for f in fields(self):
            value = getattr(other, f.name)
            if isinstance(value, int):
                setattr(self, f.name, getattr(self, f.name) + value)


@dataclass(slots=True)
class ReadStats:
    """Counts per source, in reading order, and their sum."""

    files: dict[str, FileStats] = field(default_factory=dict)

    def for_source(self, source: str) -> FileStats:
        stats = self.files.get(source)
        if stats is None:
            stats = self.files[source] = FileStats(source)
        return stats

    @property
    def total(self) -> FileStats:
        total = FileStats("*")
        for stats in self.files.values():
            total.add(stats)
        return total
