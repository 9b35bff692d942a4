"""Nova's live-migration log messages, recognised by shape, as typed `Marker`s with their numbers.

The templates are Nova's own format strings (openstack/nova, Liberty 12.0.0 to 2026.1 33.x,
`nova/compute/{api,manager}.py`, `nova/conductor/tasks/live_migrate.py`,
`nova/virt/libvirt/{driver,migration}.py`), with the placeholders renamed to the `Marker` field
they fill, plus the older (Essex–Kilo) and vendor wordings that differ. Each template becomes a
regex programmatically: literal text escaped, runs of spaces made tolerant, `%(x)d ms` matching
both `46 ms` and `46ms`. Matching ignores the logger, because JSON and syslog forms carry it
differently and several messages moved between modules across releases.

Recognition is cheap by design: the message's first word selects the few templates that can
match, and only those run a regex.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from logs_parsers.literal_search import LiteralSearch

MARKER_KINDS = (
    "api_accepted",
    "force_complete_requested",
    "abort_requested",
    "scheduler_selected",
    "host_skipped",
    "conductor_failed",
    "precheck_failed",
    "check_destination",
    "check_source",
    "pre_live_migration_start",
    "pre_live_migration_driver_start",
    "creating_instance_dir",
    "checking_images",
    "connecting_volumes",
    "plugging_vifs",
    "plug_vifs_retry",
    "pre_live_migration_driver_done",
    "pre_live_migration_result",
    "pre_live_migration_took",
    "pre_live_migration_failed",
    "vif_plug_timeout",
    "vif_events_timeout",
    "vifs_received_continue",
    "vif_event_received",
    "ports_binding",
    "live_migration_data",
    "monitor_started",
    "migrate_api_invoked",
    "migrate_api_completed",
    "operation_thread_running",
    "migration_not_running_yet",
    "operation_thread_finished",
    "downtime_increased",
    "downtime_increase_failed",
    "downtime_steps_listed",
    "downtime_unchanged",
    "downtime_no_step",
    "progress",
    "watermark",
    "stuck",
    "completion_timeout",
    "postcopy_switch",
    "postcopy_switch_failed",
    "postcopy_already_switched",
    "pause_failed",
    "resume_failed",
    "lifecycle",
    "job_type_fixed",
    "job_state_inferred",
    "unexpected_job_type",
    "operation_completed",
    "operation_aborted",
    "operation_cancelled",
    "live_migration_failure",
    "driver_failed",
    "monitor_error",
    "abort_failed",
    "monitor_done",
    "post_live_migration_source",
    "post_live_migration_dest",
    "migration_finished",
    "post_dest_failed",
    "rollback",
    "queued_cancelled",
    "queued_cancel_failed",
    "rollback_network_cleanup_failed",
    "reset_on_startup",
    "submit_refused",
)

LIFECYCLE_STATES = (
    "Started",
    "Stopped",
    "Paused",
    "Resumed",
    "Suspended",
    "Postcopy started",
    "Migration completed",
)


class Marker(NamedTuple):
    """A recognised phase message. Only the fields its template carries are set.

    A named tuple: immutable (recognised markers are cached and shared), and thousands are built
    and sent between processes per replay, which a tuple makes cheap."""

    kind: str
    host: str | None = None
    """Destination (api_accepted, took, failed-at, finished, ...), skipped or selected host."""
    reason: str | None = None
    """Error text or skip reason, as logged."""
    data: str | None = None
    """The free-form payload: migrate_data repr, instance directory, events, inferred outcome."""
    migration_id: str | None = None
    state: str | None = None
    """Lifecycle state (one of LIFECYCLE_STATES), or the domain state behind job_state_inferred."""
    job_type: int | None = None
    downtime_ms: int | None = None
    elapsed_s: float | None = None
    duration_s: float | None = None
    """pre_live_migration_took: seconds taken; stuck: seconds without progress; watermark:
    seconds since the low watermark last moved."""
    steps: tuple[tuple[int, int], ...] | None = None
    """The downtime ramp as (seconds, downtime ms) pairs."""
    memory_remaining_percent: int | None = None
    memory_processed_bytes: int | None = None
    memory_remaining_bytes: int | None = None
    memory_total_bytes: int | None = None
    disk_remaining_percent: int | None = None
    disk_processed_bytes: int | None = None
    disk_remaining_bytes: int | None = None
    disk_total_bytes: int | None = None
    data_remaining_bytes: int | None = None
    watermark_bytes: int | None = None
    bandwidth_mib_s: int | None = None
    attempt: int | None = None
    max_attempts: int | None = None


_FIELD_INDEX = {name: index for index, name in enumerate(Marker._fields)}
_HOST = _FIELD_INDEX["host"]

_FINISHED: dict[str, object] = {"data": "finished"}

# (kind, template, constant fields). Placeholders are named after Marker fields.
_CATALOGUE: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("api_accepted", "Going to try to live migrate instance to %(host)s", {}),
    ("force_complete_requested", "Going to try to force live migration to complete", {}),
    ("abort_requested", "Going to cancel live migration %(migration_id)s", {}),
    ("scheduler_selected", "Selected host: %(host)s", {}),
    ("host_skipped", "Skipping host: %(host)s because: %(reason)s", {}),
    (
        "conductor_failed",
        "Migration of instance %(data)s to host %(host)s unexpectedly failed.",
        {},
    ),
    (
        "precheck_failed",
        "Unexpected exception received from conductor during pre-live-migration checks "
        "'%(reason)s'",
        {},
    ),
    ("precheck_failed", "Migration pre-check failed: %(reason)s", {}),
    ("check_destination", "destination check data is %(data)s", {}),
    ("check_source", "source check data is %(data)s", {}),
    ("pre_live_migration_start", "pre_live_migration data is %(data)s", {}),
    ("pre_live_migration_driver_start", "migrate_data in pre_live_migration: %(data)s", {}),
    ("creating_instance_dir", "Creating instance directory: %(data)s", {}),
    (
        "checking_images",
        "Checking to make sure images and backing files are present before live migration.",
        {},
    ),
    ("connecting_volumes", "Connecting volumes before live migration.", {}),
    ("plugging_vifs", "Plugging VIFs before live migration.", {}),
    (
        "plugging_vifs",
        "Plugging VIFs using destination host port bindings before live migration.",
        {},
    ),
    (
        "plug_vifs_retry",
        "plug_vifs() failed %(attempt)d.Retry up to %(max_attempts)d for %(host)s.",
        {},
    ),
    ("plug_vifs_retry", "plug_vifs() failed %(attempt)d. Retry up to %(max_attempts)d.", {}),
    ("pre_live_migration_driver_done", "driver pre_live_migration data is %(data)s", {}),
    ("pre_live_migration_result", "pre_live_migration result data is %(data)s", {}),
    (
        "pre_live_migration_took",
        "Took %(duration_s)0.2f seconds for pre_live_migration on destination host %(host)s.",
        {},
    ),
    ("pre_live_migration_failed", "Pre live migration failed at %(host)s", {}),
    (
        "vif_plug_timeout",
        "Failed waiting for network virtual interfaces to be plugged on the destination host "
        "%(host)s.",
        {},
    ),
    ("vif_events_timeout", "Timed out waiting for events: %(data)s", {}),
    (
        "vifs_received_continue",
        "VIF events received, continuing migration with max bandwidth configured: "
        "%(bandwidth_mib_s)d",
        {},
    ),
    (
        "vifs_received_continue",
        "VIFs events received, continuing migration, bandwidth: %(bandwidth_mib_s)d",
        {},
    ),
    # Neutron's event reaching the instance's host; Nova 18+ waits for it on the source before
    # the copy starts (`live_migration_wait_for_vif_plug`)
    ("vif_event_received", "Received event network-vif-plugged-%(data)s", {}),
    ("vif_event_received", "Processing event network-vif-plugged-%(data)s", {}),
    ("ports_binding", "Binding ports to destination host: %(host)s", {}),
    ("ports_binding", "Start binding ports on destination host: %(host)s", {}),
    ("live_migration_data", "live_migration data is %(data)s", {}),
    ("monitor_started", "Starting monitoring of live migration", {}),
    ("migrate_api_invoked", "About to invoke the migrate API", {}),
    ("migrate_api_completed", "Migrate API has completed", {}),
    ("operation_thread_running", "Operation thread is still running", {}),
    ("migration_not_running_yet", "Migration not running yet", {}),
    ("operation_thread_finished", "Migration operation thread has finished", {}),
    (
        "downtime_increased",
        "Increasing downtime to %(downtime_ms)d ms after %(elapsed_s)d sec elapsed time",
        {},
    ),
    (
        "downtime_increase_failed",
        "Unable to increase max downtime to %(downtime_ms)d ms: %(reason)s",
        {},
    ),
    ("downtime_steps_listed", "Current %(downtime_ms)s elapsed %(elapsed_s)d steps %(steps)s", {}),
    ("downtime_unchanged", "Downtime does not need to change", {}),
    ("downtime_no_step", "No current step", {}),
    (
        "progress",
        "Migration running for %(elapsed_s)d secs, memory %(memory_remaining_percent)d%% "
        "remaining (bytes processed=%(memory_processed_bytes)d, "
        "remaining=%(memory_remaining_bytes)d, total=%(memory_total_bytes)d); "
        "disk %(disk_remaining_percent)d%% remaining (bytes processed=%(disk_processed_bytes)d, "
        "remaining=%(disk_remaining_bytes)d, total=%(disk_total_bytes)d).",
        {},
    ),
    (
        "progress",
        "Migration running for %(elapsed_s)d secs, memory %(memory_remaining_percent)d%% "
        "remaining; (bytes processed=%(memory_processed_bytes)d, "
        "remaining=%(memory_remaining_bytes)d, total=%(memory_total_bytes)d)",
        {},
    ),
    (
        "watermark",
        "Data remaining %(data_remaining_bytes)d bytes, low watermark %(watermark_bytes)d bytes "
        "%(duration_s)d seconds ago",
        {},
    ),
    ("stuck", "Live migration stuck for %(duration_s)d sec", {}),
    ("completion_timeout", "Live migration not completed after %(elapsed_s)d sec", {}),
    ("postcopy_switch", "Switching to post-copy migration mode", {}),
    ("postcopy_switch_failed", "Failed to switch to post-copy live migration: %(reason)s", {}),
    (
        "postcopy_already_switched",
        "Live-migration %(data)s already switched to post-copy mode.",
        {},
    ),
    ("pause_failed", "Failed to pause instance during live-migration %(reason)s", {}),
    (
        "resume_failed",
        "Failed to resume paused instance before live-migration rollback %(reason)s",
        {},
    ),
    ("lifecycle", "VM %(state)s (Lifecycle Event)", {}),
    ("job_type_fixed", "Fixed incorrect job type to be %(job_type)d", {}),
    (
        "job_state_inferred",
        "VM is shutoff, migration finished",
        {"state": "shutoff", "data": "finished"},
    ),
    (
        "job_state_inferred",
        "VM is missing, migration finished",
        {"state": "missing", "data": "finished"},
    ),
    (
        "job_state_inferred",
        "VM running on src, migration failed",
        {"state": "running on source", "data": "failed"},
    ),
    ("job_state_inferred", "Error %(reason)s, migration failed", {"data": "failed"}),
    ("unexpected_job_type", "Unexpected migration job type: %(job_type)d", {}),
    ("operation_completed", "Migration operation has completed", {}),
    ("operation_aborted", "Migration operation has aborted", {}),
    ("operation_cancelled", "Migration operation was cancelled", {}),
    ("live_migration_failure", "Live Migration failure: %(reason)s", {}),
    ("driver_failed", "Live migration failed.", {}),
    ("monitor_error", "Error monitoring migration: %(reason)s", {}),
    ("abort_failed", "Failed to abort migration %(reason)s", {}),
    ("abort_failed", "Failed to cancel migration %(reason)s", {}),
    ("abort_failed", "Failed to abort live-migration", {}),
    ("abort_failed", "Error occured when trying to abort live %(reason)s", {}),
    ("abort_failed", "Error occurred when trying to abort live %(reason)s", {}),
    ("monitor_done", "Live migration monitoring is all done", {}),
    ("post_live_migration_source", "_post_live_migration() is started..", {}),
    ("post_live_migration_source", "post_live_migration() is started..", {}),
    ("post_live_migration_dest", "Post operation of migration started", {}),
    ("migration_finished", "Migrating instance to %(host)s finished successfully.", {}),
    ("post_dest_failed", "Post live migration at destination %(host)s failed", {}),
    (
        "post_dest_failed",
        "Unexpected error during post live migration at destination host.",
        {},
    ),
    ("rollback", "Migration %(migration_id)s aborted by another process, rollback.", {}),
    ("queued_cancelled", "Successfully cancelled queued live migration.", {}),
    ("queued_cancel_failed", "Unable to cancel live migration.", {}),
    (
        "rollback_network_cleanup_failed",
        "Network cleanup failed for destination host %(host)s during live migration rollback. "
        "You may need to manually clean up resources in the network service. Error: %(reason)s",
        {},
    ),
    (
        "rollback_network_cleanup_failed",
        "An error occurred while cleaning up networking during live migration rollback.",
        {},
    ),
    (
        "reset_on_startup",
        "Instance found in migrating state during startup. Resetting task_state",
        {},
    ),
    (
        "submit_refused",
        "Migration %(migration_id)s failed to submit as the compute service is shutting down.",
        {},
    ),
)

RELEVANT_NEEDLES: tuple[bytes, ...] = (
    b"igrat",
    b" downtime to ",
    b"Lifecycle Event",
    b"network-vif-plugged",
)
"""Byte strings that a line must contain to possibly matter for live migration. Every template
above contains one of them, except a few DEBUG messages whose oslo location suffix
(`_live_migration_monitor .../libvirt/migration.py`, `check_can_live_migrate_source`, ...) or JSON
`funcname` does, and those the reader reaches from a neighbour: the watermark INFO line right
after its progress line, the VIF plug timeout through its traceback. Not reached by the
relevant path: the `plug_vifs() failed` WARNING and the `Binding ports to destination host`
DEBUG line (logged from `handle_lifecycle_event`) unless they follow a relevant record."""

MONITOR_UNCHANGED = b"Downtime does not need to change"
"""Nova's monitor logs this on every pass (twice a second) that changes nothing, right after
that pass's `Current <ms> elapsed <s> steps [...]` line (`MONITOR_RAMP`), which repeats the
ramp. With DEBUG on the pair is most of the lines that mention migration, and says nothing that
the first `Current None …` line and the `Increasing downtime` lines do not."""
MONITOR_RAMP = b"] Current "

_PLACEHOLDER = re.compile(r"%\((?P<name>\w+)\)(?:0?\.\d+)?(?P<conversion>[dfs])|%%")
_NUMBER = {"d": r"-?\d+", "f": r"-?\d+(?:\.\d+)?"}


def template_regex(template: str) -> re.Pattern[str]:
    """Compile a `%(name)d/%(name)s/%(name)0.2f` template into a regex with named groups.

    Spaces match any run of whitespace; a space right after a number may be absent
    (`46 ms` and `46ms`); a trailing `%(x)s` takes the rest of the message."""
    parts = []
    position = 0
    after_number = False
    matches = list(_PLACEHOLDER.finditer(template))
    for index, match in enumerate(matches):
        parts.append(_literal(template[position : match.start()], after_number))
        position = match.end()
        if match.group(0) == "%%":
            parts.append("%")
            after_number = False
            continue
        name, conversion = match.group("name", "conversion")
        if conversion == "s":
            last = index == len(matches) - 1 and match.end() == len(template)
            if last and parts[-1].endswith(r"\s+"):
                parts[-1] = parts[-1][:-3] + r"\s*"  # a stripped message loses that space
            parts.append(f"(?P<{name}>.*)" if last else f"(?P<{name}>.*?)")
        else:
            parts.append(f"(?P<{name}>{_NUMBER[conversion]})")
        after_number = conversion != "s"
    parts.append(_literal(template[position:], after_number))
    return re.compile("".join(parts) + r"\s*$", re.S)


def _literal(text: str, after_number: bool) -> str:
    pieces = [re.escape(word) for word in re.split(r" +", text)]
    if after_number and text.startswith(" "):
        return r"\s*" + r"\s+".join(pieces[1:])
    return r"\s+".join(pieces)


def _first_word(text: str) -> str:
    space = text.find(" ")
    return text if space < 0 else text[:space]


def _reader(name: str) -> Callable[[str], object]:
    """How the text a template's `%(name)…` matched is read into its marker field."""
    if name == "steps":
        return _parse_steps
    if name == "downtime_ms":
        return _downtime_ms
    if name in ("elapsed_s", "duration_s"):
        return float
    if name.endswith(("_bytes", "_percent", "_ms", "_mib_s")) or name in (
        "job_type",
        "attempt",
        "max_attempts",
    ):
        return int
    return str


def _downtime_ms(raw: str) -> int | None:
    """Some releases log a downtime that is not a number (`None`): no value then."""
    return int(raw) if raw.lstrip("-").isdigit() else None


@lru_cache(maxsize=64)
def _parse_steps(raw: str) -> tuple[tuple[int, int], ...] | None:
    """Nova logs the ramp as a Python list of (seconds, ms) tuples; a generator object's repr
    (`<generator object ...>`) or anything else is not a list and gives None. Cached: the
    migrations of one deployment log the same ramp."""
    if not _STEP_LIST.fullmatch(raw):
        return None
    try:
        steps = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    return tuple((int(seconds), int(ms)) for seconds, ms in steps)


class _Template(NamedTuple):
    """One catalogue entry, ready to match: what its marker holds before the message's numbers
    are read in (`fields`, in `Marker`'s order), and for each group of its regex the field it
    fills and how its text is read."""

    kind: str
    pattern: re.Pattern[str]
    fields: tuple[object, ...]
    groups: tuple[tuple[str, int, Callable[[str], object]], ...]


def _template(kind: str, template: str, constants: dict[str, object]) -> _Template:
    pattern = template_regex(template)
    fields: list[object] = [None] * len(Marker._fields)
    fields[_FIELD_INDEX["kind"]] = kind
    for name, value in constants.items():
        if name in _FIELD_INDEX:
            fields[_FIELD_INDEX[name]] = value
    groups = tuple(
        (name, _FIELD_INDEX[name], _reader(name))
        for name in pattern.groupindex
        if name in _FIELD_INDEX
    )
    return _Template(kind, pattern, tuple(fields), groups)


def _build_dispatch() -> dict[str, list[_Template]]:
    dispatch: dict[str, list[_Template]] = {}
    for kind, template, constants in _CATALOGUE:
        dispatch.setdefault(_first_word(template), []).append(_template(kind, template, constants))
    return dispatch


_DISPATCH = _build_dispatch()
MARKER_FIRST_WORDS = frozenset(word.encode() for word in _DISPATCH)
"""The words a marker's message begins with: a message beginning otherwise is no marker."""


def _fragments_without_needles() -> tuple[bytes, ...]:
    """For each template without a relevant needle, its longest literal piece as Nova writes
    it: a line holding none of these nor a needle cannot be a marker (of Nova's own spacing;
    the recogniser also accepts irregular spacing, which this quick test does not)."""
    fragments = set()
    for _, template, _ in _CATALOGUE:
        encoded = template.encode()
        if any(needle in encoded for needle in RELEVANT_NEEDLES):
            continue
        pieces = _PLACEHOLDER.sub("\0", template).split("\0")
        fragments.add(max(pieces, key=len).strip().encode())
    return tuple(sorted(fragments))


_MAYBE_MARKER = LiteralSearch(RELEVANT_NEEDLES + _fragments_without_needles())
"""One search for every needle and fragment at once: cheaper than a substring test each."""


def may_be_marker(line: bytes | bytearray) -> bool:
    """A cheap test on a raw line: False means `recognise` cannot match its message."""
    return _MAYBE_MARKER.occurs_in(line)


_STEP_LIST = re.compile(r"\[\s*(?:\(\s*-?\d+\s*,\s*-?\d+\s*\)\s*,?\s*)*\]")
_SELECTED_HOST = re.compile(r"\(\s*'?(?P<host>[^,\s')]+)")


@lru_cache(maxsize=1024)
def recognise(message: str) -> Marker | None:
    """The marker a message stands for, or None. `message` is a record's message (without
    the oslo prefix, context, `[instance: ...]` and DEBUG location suffix).

    Cached: the reader asks about a line it follows and the replay asks again about the record
    it becomes, and constant messages recur; a `Marker` is immutable, so sharing one is safe."""
    text = message.strip()
    candidates = _DISPATCH.get(_first_word(text))
    if candidates is None:
        return None
    for template in candidates:
        match = template.pattern.match(text)
        if match is None:
            continue
        fields = list(template.fields)
        for name, index, read in template.groups:
            raw = match.group(name)
            if raw is not None:
                fields[index] = read(raw.strip())
        return _refine(template.kind, fields)
    return None


def _refine(kind: str, fields: list[object]) -> Marker:
    host = fields[_HOST]
    if kind == "api_accepted" and host == "another host":
        fields[_HOST] = None
    elif kind == "scheduler_selected" and isinstance(host, str):
        inner = _SELECTED_HOST.search(host)
        fields[_HOST] = inner.group("host") if inner else host.split()[0]
    return Marker._make(fields)
