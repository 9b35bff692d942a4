"""Turning one line of text into what it holds, whatever wraps it.

A nova line can reach us bare (oslo.log text or JSON), or behind any stack of prefixes added
on the way: `grep -r`/sosreport file names (with or without line numbers), `kubectl logs
--prefix` pod names, RFC 3339 timestamps (`kubectl --timestamps`, rsyslog high precision),
and syslog/journald `Mon DD HH:MM:SS host program[pid]:`. The prefixes are peeled in that
order; what remains is classified. The parser keeps no state between lines: attaching
continuation lines to their record is the reader's job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import Enum
from functools import lru_cache
from pathlib import PurePosixPath

from logs_parsers.hosts import host_from_path
from logs_parsers.records import Record


class LineKind(Enum):
    HEAD = "head"
    """Starts a record."""
    EXCEPTION = "exception"
    """An oslo line without request context at ERROR/CRITICAL/TRACE: oslo.log writes each
    traceback line this way; it continues the previous record of the same logger."""
    CONTINUATION = "continuation"
    """Text in no record shape: continues the previous record if there is one."""
    OTHER_PROGRAM = "other_program"
    BLANK = "blank"
    GARBAGE = "garbage"
    """Binary or undecodable content."""


@dataclass(slots=True)
class ParsedLine:
    kind: LineKind
    record: Record | None = None
    text: str = ""
    pid: int | None = None


_HEAD = LineKind.HEAD
_EXCEPTION = LineKind.EXCEPTION
"""For the hot path: an enum member is slow to look up."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RSYSLOG_ESCAPE = re.compile(r"#([0-3][0-7]{2})")

_GREP_PREFIX = re.compile(r"(?P<path>(?:[^\s:]*/)?[^\s:/]*\.log[^\s:/]*):(?:(?P<lineno>\d+):)?")
_KUBE_PREFIX = re.compile(r"\[pod/(?P<pod>[^/\]\s]+)/(?P<container>[^\]\s]+)\] ")
_ISO_TIME = re.compile(r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s+")
_SYSLOG_TIME = re.compile(r"(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) ")
_SYSLOG_SOURCE = re.compile(
    r"(?P<host>\S+) (?P<program>[A-Za-z][\w.\-/@]*?)(?:\[(?P<pid>\d+)\])?: ?"
)

_LEVELS = "DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|TRACE|AUDIT|NOTICE"
_OSLO_TIME = (
    r"(?P<date>\d{4}-\d\d-\d\d)[ T](?P<clock>\d\d:\d\d:\d\d)(?:[.,](?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d\d:?\d\d)?\s+"
)
_OSLO_REST = (
    r"(?:(?P<pid>\d+)\s+)?(?P<level>"
    + _LEVELS
    + r")\s+(?P<logger>[A-Za-z_][\w.\-]*)(?: (?P<rest>.*))?$"
)
_OSLO = re.compile(_OSLO_TIME + _OSLO_REST, re.S)
_OSLO_UNTIMED = re.compile(_OSLO_REST, re.S)
_PREFIXES = re.compile(
    r"(?:\[(?!instance:)(?P<bracketed>[^\]]*)\] ?)?(?:\[instance: (?P<instance>[^\]]*)\] ?)?"
)
"""What may open the rest of an oslo line: a bracketed text (the request context, if it reads
as one) and `[instance: uuid]`."""
_COMMON_HEAD = re.compile(
    r"(([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})[.,]([0-9]{3})) ([0-9]+) ("
    + _LEVELS
    + r") ([A-Za-z_][A-Za-z0-9_.\-]*) "
    + _PREFIXES.pattern
)
"""The head of nearly every oslo line (`2024-03-04 06:01:29.338 10000 DEBUG nova.x `), then its
prefixes: one short match where `_OSLO` reads the whole line. The head is a subset of `_OSLO`'s,
read the same way."""
_MILLISECONDS = {f"{ms:03d}": timedelta(milliseconds=ms) for ms in range(1000)}
"""oslo writes milliseconds: the fraction of a second for each three-digit text."""
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SERVICE_IN_NAME = re.compile(r"(nova[-_][a-z]+(?:[-_][a-z]+)*)")
_EMPTY = {"-", "None", ""}
_NO_CONTEXT = (None, None, None, None)
_EXCEPTION_LEVELS = {"ERROR", "CRITICAL", "TRACE"}


def clean_text(raw: bytes) -> tuple[str, bool]:
    """Decode one raw line: drop the line end and NUL bytes, decode rsyslog's `#033`-style
    octal escapes and strip ANSI colours. Returns the text and whether it looked binary."""
    text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
    garbage = "\x00" in text or "\ufffd" in text
    if garbage:
        text = text.replace("\x00", "")
    if "#" in text and "#0" in text:  # one character is found much faster than two
        text = _RSYSLOG_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return text, garbage


def service_from_name(name: str) -> str | None:
    """`nova-compute` from `nova_compute`, `nova-compute.log.1.gz` or `/var/log/nova/...`."""
    match = _SERVICE_IN_NAME.search(name.rsplit("/", 1)[-1])
    return match.group(1).replace("_", "-") if match else None


class LineParser:
    """Classifies lines. `oslo_timezone` is the zone oslo/JSON times are written in when they
    do not say (oslo.log writes local time; most deployments run in UTC)."""

    def __init__(self, oslo_timezone: tzinfo = UTC) -> None:
        self._zone = oslo_timezone
        self._second_cache: dict[str, datetime | None] = {}

    def parse(self, text: str, garbage: bool = False) -> ParsedLine:
        head = _COMMON_HEAD.match(text)
        if head is not None:  # most lines: a bare oslo line of the common shape
            time_text, second, fraction, pid, level, logger, bracketed, instance = head.groups()
            base = self._second_cache.get(second, _MISSING)
            if base is _MISSING:
                base = self._cache_second(second, second[:10], second[11:], None)
            timestamp = None if base is None else base + _MILLISECONDS[fraction]
            return _oslo_line(
                timestamp, time_text, int(pid), level, logger, head, bracketed, instance
            )
        if not text.strip():
            return ParsedLine(LineKind.GARBAGE if garbage else LineKind.BLANK)
        if text[10:11] == " " and text[:4].isdigit():  # bare oslo: no prefix to peel
            bare = self._parse_body(text, wrapped=False)
            if bare is not None:
                return bare
            return ParsedLine(LineKind.GARBAGE if garbage else LineKind.CONTINUATION, text=text)
        body = text
        wrapper_time_text = None
        wrapper_timestamp = None
        host = service = None
        pid = None
        wrapped = False
        grep = _GREP_PREFIX.match(body)
        if grep:
            body = body[grep.end() :]
            grep_path = PurePosixPath(grep.group("path"))
            host = host_from_path(grep_path)
            service = service_from_name(grep_path.name)
        kube = _KUBE_PREFIX.match(body)
        if kube:
            body = body[kube.end() :]
            service = kube.group("container").replace("_", "-")
            wrapped = True
        iso = _ISO_TIME.match(body)
        if iso:
            body = body[iso.end() :]
            wrapper_time_text = iso.group("iso")
            wrapper_timestamp = _parse_iso(wrapper_time_text)
            wrapped = True
        bsd = None if iso else _SYSLOG_TIME.match(body)
        if bsd:
            body = body[bsd.end() :]
            wrapper_time_text = bsd.group("bsd")
        if iso or bsd:
            source = _SYSLOG_SOURCE.match(body)
            if source and not body[: source.end()].startswith(tuple("0123456789")):
                body = body[source.end() :]
                host = source.group("host")
                program = source.group("program")
                pid = int(source.group("pid")) if source.group("pid") else None
                if "nova" in program:
                    service = program.rsplit("/", 1)[-1].replace("_", "-")
                else:
                    parsed = self._parse_body(body, wrapped=True)
                    if parsed is None:
                        return ParsedLine(LineKind.OTHER_PROGRAM)
                    return self._finish(
                        parsed, wrapper_time_text, wrapper_timestamp, host, program, pid
                    )
            elif bsd:
                return ParsedLine(LineKind.GARBAGE if garbage else LineKind.CONTINUATION, text=text)
        parsed = self._parse_body(body, wrapped=wrapped or bsd is not None)
        if parsed is None:
            if not body.strip():
                return ParsedLine(LineKind.BLANK)
            kind = LineKind.GARBAGE if garbage else LineKind.CONTINUATION
            return ParsedLine(kind, text=body, pid=pid)
        return self._finish(parsed, wrapper_time_text, wrapper_timestamp, host, service, pid)

    def _finish(
        self,
        parsed: ParsedLine,
        wrapper_time_text: str | None,
        wrapper_timestamp: datetime | None,
        host: str | None,
        service: str | None,
        pid: int | None,
    ) -> ParsedLine:
        record = parsed.record
        assert record is not None
        record.wrapper_time_text = wrapper_time_text
        record.wrapper_timestamp = wrapper_timestamp
        if record.timestamp is None:
            record.timestamp = wrapper_timestamp
        if host and not record.host:
            record.host = host
        if service:
            record.service = service
        if record.pid is None:
            record.pid = pid
        parsed.pid = record.pid
        return parsed

    def _parse_body(self, body: str, wrapped: bool) -> ParsedLine | None:
        if body.startswith("{"):
            return self._parse_json(body)
        match = _OSLO.match(body)
        if match is None:
            if not wrapped:
                return None
            match = _OSLO_UNTIMED.match(body)
            if match is None:
                return None
            timestamp = time_text = None
        else:
            time_text, timestamp = self._oslo_time(match)
        pid, level, logger, rest = match.group("pid", "level", "logger", "rest")
        pid_number = int(pid) if pid else None
        prefixes = _PREFIXES.match(rest or "")
        return _oslo_line(
            timestamp, time_text, pid_number, level, logger, prefixes, *prefixes.groups()
        )

    def _oslo_time(self, match: re.Match[str]) -> tuple[str, datetime | None]:
        date, clock, frac, zone = match.group("date", "clock", "frac", "tz")
        written_to = match.end("tz" if zone else "frac" if frac else "clock")
        time_text = match.string[match.start("date") : written_to]
        key = f"{date} {clock}{zone or ''}"
        base = self._second_cache.get(key, _MISSING)
        if base is _MISSING:
            base = self._cache_second(key, date, clock, zone)
        if base is None:
            return time_text, None
        if frac:
            base = base + _fraction(frac)
        return time_text, base

    def _cache_second(self, key: str, date: str, clock: str, zone: str | None) -> datetime | None:
        """The UTC time of a whole second (None if it is no date), remembered: a log's lines
        mostly share their second with many others."""
        base = self._base_time(date, clock, zone)
        if len(self._second_cache) > 4096:
            self._second_cache.clear()
        self._second_cache[key] = base
        return base

    def _base_time(self, date: str, clock: str, zone: str | None) -> datetime | None:
        # A time in UTC is read as one: the same value as setting the zone, at a tenth of the
        # cost (a third of the lines a replay parses start a second not cached).
        in_utc = zone is None and self._zone is UTC
        try:
            written = datetime.fromisoformat(
                f"{date}T{clock}+00:00" if in_utc else f"{date}T{clock}"
            )
        except ValueError:
            return None
        if in_utc:
            return written
        zone_info = _zone_from_text(zone) if zone else self._zone
        return written.replace(tzinfo=zone_info).astimezone(UTC)

    def _parse_json(self, body: str) -> ParsedLine | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("message", data.get("msg")), str):
            return None
        message = data.get("message", data.get("msg"))
        record = Record(source="", line_number=0, message=message, line_format="json")
        created = data.get("created")
        asctime = data.get("asctime") or data.get("timestamp")
        if isinstance(asctime, str):
            record.time_text = asctime
        if isinstance(created, int | float):
            record.timestamp = datetime.fromtimestamp(created, UTC)
        elif isinstance(asctime, str):
            match = _OSLO.match(asctime + " 0 INFO x")
            if match:
                record.timestamp = self._oslo_time(match)[1]
        level = data.get("levelname")
        if isinstance(level, str):
            record.level = "WARNING" if level == "WARN" else level
        if isinstance(data.get("name"), str):
            record.logger = data["name"]
        if isinstance(data.get("process"), int):
            record.pid = data["process"]
        if isinstance(data.get("hostname"), str):
            record.host = data["hostname"]
        function = data.get("funcname", data.get("funcName"))
        if isinstance(function, str):
            record.function = function
        context = data.get("context")
        if isinstance(context, dict):
            record.request_id = _text(context.get("request_id"))
            record.global_request_id = _text(context.get("global_request_id"))
            record.user = _text(context.get("user") or context.get("user_id"))
            record.project = _text(
                context.get("project") or context.get("project_id") or context.get("tenant")
            )
        record.instance_uuid = _instance_from_json(data)
        tb = data.get("traceback") or data.get("exc_info")
        if isinstance(tb, str):
            record.traceback = tb.splitlines()
        elif isinstance(tb, list):
            record.traceback = [line for item in tb for line in str(item).splitlines()]
        return ParsedLine(LineKind.HEAD, record=record, text=message, pid=record.pid)


_MISSING: datetime | None = datetime.min


def _oslo_line(
    timestamp: datetime | None,
    time_text: str | None,
    pid: int | None,
    level: str,
    logger: str,
    prefixes: re.Match[str],
    bracketed: str | None,
    instance_uuid: str | None,
) -> ParsedLine:
    """The record of an oslo text line from its head and what follows the logger: `prefixes`
    matched `_PREFIXES` there, and its groups `bracketed` and `instance_uuid` are given (the
    caller has them at hand). Reads the request context, the instance, the message and its DEBUG
    location suffix."""
    if level == "WARN":
        level = "WARNING"
    context = None if bracketed is None else _context(bracketed)
    if context is None and bracketed is not None:
        # other bracketed text: the message starts with it, and no instance prefix
        message = prefixes.string[prefixes.start("bracketed") - 1 :]
        instance_uuid = None
    else:
        message = prefixes.string[prefixes.end() :]
    global_request_id, request_id, user, project = context or _NO_CONTEXT
    if instance_uuid is not None:
        instance_uuid = instance_uuid.strip()
    function = None
    if message and message[-1].isdigit():
        message, function = _split_location(message)
    elif message.endswith("}}"):
        message, function, logged_pid = _split_devstack_location(message)
        if pid is None and logged_pid.isdigit():
            pid = int(logged_pid)
    # Record's fields in their order: source, line_number, message, timestamp, time_text,
    # wrapper_time_text, wrapper_timestamp, host, service, pid, level, logger, request_id,
    # global_request_id, user, project, instance_uuid, function, traceback.
    record = Record(
        "", 0, message, timestamp, time_text, None, None, None, None, pid, level, logger,
        request_id, global_request_id, user, project, instance_uuid, function, [],
    )  # fmt: skip
    if context is None and level in _EXCEPTION_LEVELS:
        return ParsedLine(_EXCEPTION, record, message, pid)
    return ParsedLine(_HEAD, record, message, pid)


def _fraction(digits: str) -> timedelta:
    """The fraction of a second written as `digits` (beyond microseconds, cut)."""
    fraction = _MILLISECONDS.get(digits)
    if fraction is None:
        fraction = timedelta(microseconds=int(digits[:6].ljust(6, "0")))
    return fraction


def _split_location(rest: str) -> tuple[str, str | None]:
    """Split oslo's DEBUG suffix ` funcName /path/file.py:lineno` off: (message, funcName)."""
    function_start = rest.rfind(" ", 0, rest.rfind(" "))
    function = _location_function(rest[function_start + 1 :])
    if function is None:
        return rest, None
    return rest[: function_start if function_start > 0 else 0], function


@lru_cache(maxsize=4096)
def _location_function(tail: str) -> str | None:
    """The funcName of a line's tail `funcName /path/file.py:lineno`, None if it is no such
    suffix. A few call sites write most lines, so most tails are read once. A tail with no space
    (a message with none) is read as a location, with all of it but its last character as the
    function."""
    function, space, location = tail.partition(" ")
    if not space:
        function, location = tail[:-1], tail
    file_part, colon, line = location.rpartition(":")
    if not colon or not file_part.endswith(".py") or not line.isdigit():
        return None
    return function if function and (function.isidentifier() or function.startswith("<")) else None


def _split_devstack_location(rest: str) -> tuple[str, str | None, str]:
    """Split devstack's DEBUG suffix ` {{(pid=N) funcName /path/file.py:lineno}}` off:
    (message, funcName, the pid as written)."""
    start = rest.rfind(" {{(pid=")
    if start < 0:
        return rest, None, ""
    inner = rest[start + 8 : -2]
    pid, _, location = inner.partition(") ")
    function = location.split(" ", 1)[0]
    return rest[:start], function or None, pid


@lru_cache(maxsize=4096)
def _context(bracketed: str) -> tuple[str | None, str | None, str | None, str | None] | None:
    """Read oslo's `[request_id user project ...]` in every era: `[-]`, `[req-x user project]`,
    `[req-x user project - - -]`, and `[global req-x user project - - default default]`, as
    (global_request_id, request_id, user, project); None for other bracketed text. A request's
    lines repeat its context, so most contexts are read once."""
    tokens = bracketed.split()
    count = len(tokens)
    if count > 1 and tokens[1].startswith("req-"):
        global_request_id = None if tokens[0] in _EMPTY else tokens[0]
        first = 1
    elif count and (tokens[0] == "-" or tokens[0].startswith("req-")):
        global_request_id = None
        first = 0
    else:
        return None
    request_id = tokens[first] if tokens[first].startswith("req-") else None
    user = tokens[first + 1] if count > first + 1 and tokens[first + 1] not in _EMPTY else None
    project = tokens[first + 2] if count > first + 2 and tokens[first + 2] not in _EMPTY else None
    return global_request_id, request_id, user, project


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value not in _EMPTY else None


def _instance_from_json(data: dict) -> str | None:
    for holder in (data, data.get("extra") if isinstance(data.get("extra"), dict) else {}):
        instance = holder.get("instance")
        if isinstance(instance, dict) and isinstance(instance.get("uuid"), str):
            return instance["uuid"]
        if isinstance(instance, str):
            match = _UUID.search(instance)
            if match:
                return match.group(0)
        uuid = holder.get("instance_uuid")
        if isinstance(uuid, str):
            return uuid
    return None


def _parse_iso(text: str) -> datetime | None:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, _, tail = text.partition(".")
    if tail:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[:digits][:6].ljust(6, '0')}{tail[digits:]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _zone_from_text(zone: str) -> tzinfo:
    if zone == "Z":
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))
