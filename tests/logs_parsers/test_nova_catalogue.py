"""Nova's phase messages of every era become typed markers with their numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from logs_parsers import LIFECYCLE_STATES, MARKER_KINDS, RELEVANT_NEEDLES, Marker, recognise
from logs_parsers.nova_catalogue import may_be_marker, template_regex

DATA = Path(__file__).parent / "data"
STEPS_TEXT = (
    "[(0, 46), (150, 47), (300, 48), (450, 51), (600, 57), (750, 66), (900, 84), (1050, 117), "
    "(1200, 179), (1350, 291), (1500, 500)]"
)
STEPS = (
    (0, 46), (150, 47), (300, 48), (450, 51), (600, 57), (750, 66),
    (900, 84), (1050, 117), (1200, 179), (1350, 291), (1500, 500),
)  # fmt: skip

SAMPLES = [
    # (message, kind, fields)
    ("Going to try to live migrate instance to node-3", "api_accepted", {"host": "node-3"}),
    ("Going to try to live migrate instance to another host", "api_accepted", {"host": None}),
    ("Going to cancel live migration 42", "abort_requested", {"migration_id": "42"}),
    ("Going to try to force live migration to complete", "force_complete_requested", {}),
    (
        "Selected host: WeighedHost [host: (node-3.domain.tld, node-3.domain.tld) ram: 1024.0 "
        "disk: 2048.0 io_ops: 0 instances: 1, weight: 1.0]",
        "scheduler_selected",
        {"host": "node-3.domain.tld"},
    ),
    (
        "Skipping host: node-2 because: Unacceptable CPU info: CPU doesn't have compatibility.",
        "host_skipped",
        {"host": "node-2", "reason": "Unacceptable CPU info: CPU doesn't have compatibility."},
    ),
    (
        "Migration of instance 7d1c5e0a-3b9f-4c61-8a52-9e0f4b6d2a17 to host node-3 unexpectedly "
        "failed.",
        "conductor_failed",
        {"host": "node-3", "data": "7d1c5e0a-3b9f-4c61-8a52-9e0f4b6d2a17"},
    ),
    (
        "Unexpected exception received from conductor during pre-live-migration checks "
        "'Compute host node-3 could not be found.'",
        "precheck_failed",
        {"reason": "Compute host node-3 could not be found."},
    ),
    (
        "destination check data is LibvirtLiveMigrateData(bdms=<?>,block_migration=<?>)",
        "check_destination",
        {"data": "LibvirtLiveMigrateData(bdms=<?>,block_migration=<?>)"},
    ),
    ("source check data is LibvirtLiveMigrateData(bdms=<?>)", "check_source", {}),
    ("pre_live_migration data is LibvirtLiveMigrateData()", "pre_live_migration_start", {}),
    ("migrate_data in pre_live_migration: X()", "pre_live_migration_driver_start", {}),
    (
        "Creating instance directory: /var/lib/nova/instances/7d1c5e0a",
        "creating_instance_dir",
        {"data": "/var/lib/nova/instances/7d1c5e0a"},
    ),
    (
        "Checking to make sure images and backing files are present before live migration.",
        "checking_images",
        {},
    ),
    ("Connecting volumes before live migration.", "connecting_volumes", {}),
    ("Plugging VIFs before live migration.", "plugging_vifs", {}),
    (
        "Plugging VIFs using destination host port bindings before live migration.",
        "plugging_vifs",
        {},
    ),
    (
        "plug_vifs() failed 2. Retry up to 180.",
        "plug_vifs_retry",
        {"attempt": 2, "max_attempts": 180},
    ),
    (
        "plug_vifs() failed 1.Retry up to 180 for compute-02.",
        "plug_vifs_retry",
        {"attempt": 1, "max_attempts": 180, "host": "compute-02"},
    ),
    ("driver pre_live_migration data is X()", "pre_live_migration_driver_done", {"data": "X()"}),
    ("pre_live_migration result data is X()", "pre_live_migration_result", {"data": "X()"}),
    (
        "Took 2.37 seconds for pre_live_migration on destination host compute-1.example.org.",
        "pre_live_migration_took",
        {"duration_s": 2.37, "host": "compute-1.example.org"},
    ),
    ("Pre live migration failed at node-3", "pre_live_migration_failed", {"host": "node-3"}),
    (
        "Failed waiting for network virtual interfaces to be plugged on the destination host "
        "node-3.",
        "vif_plug_timeout",
        {"host": "node-3"},
    ),
    (
        "Timed out waiting for events: [('network-vif-plugged', 'f2a1')]. If these timeouts are "
        "a persistent issue it could mean the networking backend on host node-3 does not support "
        "sending these events unless there are port binding host changes which does not happen "
        "at this point in the live migration process. You may need to disable the "
        "live_migration_wait_for_vif_plug option on host node-3.",
        "vif_events_timeout",
        {},
    ),
    (
        "VIF events received, continuing migration with max bandwidth configured: 64",
        "vifs_received_continue",
        {"bandwidth_mib_s": 64},
    ),
    (
        "VIFs events received, continuing migration, bandwidth: 107",
        "vifs_received_continue",
        {"bandwidth_mib_s": 107},
    ),
    (
        "Received event network-vif-plugged-3b1c5a2e-1111-4222-8333-944455556666",
        "vif_event_received",
        {"data": "3b1c5a2e-1111-4222-8333-944455556666"},
    ),
    (
        "Processing event network-vif-plugged-3b1c5a2e-1111-4222-8333-944455556666",
        "vif_event_received",
        {"data": "3b1c5a2e-1111-4222-8333-944455556666"},
    ),
    ("Binding ports to destination host: node-3", "ports_binding", {"host": "node-3"}),
    ("Start binding ports on destination host: node-3", "ports_binding", {"host": "node-3"}),
    ("live_migration data is LibvirtLiveMigrateData()", "live_migration_data", {}),
    ("Starting monitoring of live migration", "monitor_started", {}),
    ("About to invoke the migrate API", "migrate_api_invoked", {}),
    ("Migrate API has completed", "migrate_api_completed", {}),
    ("Operation thread is still running", "operation_thread_running", {}),
    ("Migration not running yet", "migration_not_running_yet", {}),
    ("Migration operation thread has finished", "operation_thread_finished", {}),
    (
        "Increasing downtime to 46 ms after 0 sec elapsed time",
        "downtime_increased",
        {"downtime_ms": 46, "elapsed_s": 0.0},
    ),
    (  # Liberty 12
        "Increasing downtime to 167ms after 150 sec elapsed time",
        "downtime_increased",
        {"downtime_ms": 167, "elapsed_s": 150.0},
    ),
    (
        "Increasing   downtime to 500 ms  after 1500 sec elapsed time ",
        "downtime_increased",
        {"downtime_ms": 500, "elapsed_s": 1500.0},
    ),
    (
        "Unable to increase max downtime to 500ms: Requested operation is not valid",
        "downtime_increase_failed",
        {"downtime_ms": 500, "reason": "Requested operation is not valid"},
    ),
    (
        f"Current None elapsed 0 steps {STEPS_TEXT}",
        "downtime_steps_listed",
        {"downtime_ms": None, "elapsed_s": 0.0, "steps": STEPS},
    ),
    (
        f"Current 46 elapsed 151 steps {STEPS_TEXT}",
        "downtime_steps_listed",
        {"downtime_ms": 46, "elapsed_s": 151.0, "steps": STEPS},
    ),
    (
        "Current 46 elapsed 3 steps <generator object downtime_steps at 0x7f0c2a1b3d20>",
        "downtime_steps_listed",
        {"downtime_ms": 46, "steps": None},
    ),
    ("Downtime does not need to change", "downtime_unchanged", {}),
    ("No current step", "downtime_no_step", {}),
    (
        "Migration running for 30 secs, memory 52% remaining; (bytes processed=1006632960, "
        "remaining=1132462080, total=2164260864)",
        "progress",
        {
            "elapsed_s": 30.0,
            "memory_remaining_percent": 52,
            "memory_processed_bytes": 1006632960,
            "memory_remaining_bytes": 1132462080,
            "memory_total_bytes": 2164260864,
            "disk_total_bytes": None,
        },
    ),
    (
        "Migration running for 5 secs, memory 61% remaining (bytes processed=1712914432, "
        "remaining=2627731456, total=4295770112); disk 7% remaining (bytes processed=93, "
        "remaining=7, total=100).",
        "progress",
        {
            "elapsed_s": 5.0,
            "memory_remaining_percent": 61,
            "memory_total_bytes": 4295770112,
            "disk_remaining_percent": 7,
            "disk_processed_bytes": 93,
            "disk_remaining_bytes": 7,
            "disk_total_bytes": 100,
        },
    ),
    (
        "Data remaining 545390592 bytes, low watermark 400000000 bytes 35 seconds ago",
        "watermark",
        {"data_remaining_bytes": 545390592, "watermark_bytes": 400000000, "duration_s": 35.0},
    ),
    ("Live migration stuck for 150 sec", "stuck", {"duration_s": 150.0}),
    ("Live migration not completed after 800 sec", "completion_timeout", {"elapsed_s": 800.0}),
    ("Switching to post-copy migration mode", "postcopy_switch", {}),
    (
        "Failed to switch to post-copy live migration: internal error",
        "postcopy_switch_failed",
        {"reason": "internal error"},
    ),
    (
        "Live-migration 7d1c5e0a already switched to post-copy mode.",
        "postcopy_already_switched",
        {},
    ),
    ("Failed to pause instance during live-migration boom", "pause_failed", {"reason": "boom"}),
    (
        "Failed to resume paused instance before live-migration rollback boom",
        "resume_failed",
        {"reason": "boom"},
    ),
    ("VM Paused (Lifecycle Event)", "lifecycle", {"state": "Paused"}),
    ("VM Postcopy started (Lifecycle Event)", "lifecycle", {"state": "Postcopy started"}),
    ("VM Migration completed (Lifecycle Event)", "lifecycle", {"state": "Migration completed"}),
    ("Fixed incorrect job type to be 3", "job_type_fixed", {"job_type": 3}),
    (
        "VM is shutoff, migration finished",
        "job_state_inferred",
        {"state": "shutoff", "data": "finished"},
    ),
    (
        "VM running on src, migration failed",
        "job_state_inferred",
        {"state": "running on source", "data": "failed"},
    ),
    ("Unexpected migration job type: 6", "unexpected_job_type", {"job_type": 6}),
    ("Migration operation has completed", "operation_completed", {}),
    ("Migration operation has aborted", "operation_aborted", {}),
    ("Migration operation was cancelled", "operation_cancelled", {}),
    (
        "Live Migration failure: operation failed: Lost connection to destination host",
        "live_migration_failure",
        {"reason": "operation failed: Lost connection to destination host"},
    ),
    ("Live migration failed.", "driver_failed", {}),
    (
        "Error monitoring migration: Domain not found",
        "monitor_error",
        {"reason": "Domain not found"},
    ),
    ("Failed to abort migration Domain not found", "abort_failed", {}),
    ("Failed to cancel migration Requested operation is not valid", "abort_failed", {}),
    ("Error occured when trying to abort live ", "abort_failed", {}),
    ("Error occurred when trying to abort live migration job, ignoring it.", "abort_failed", {}),
    ("Failed to abort live-migration", "abort_failed", {}),
    ("Live migration monitoring is all done", "monitor_done", {}),
    ("_post_live_migration() is started..", "post_live_migration_source", {}),
    ("post_live_migration() is started..", "post_live_migration_source", {}),  # Essex–Kilo
    ("Post operation of migration started", "post_live_migration_dest", {}),
    (
        "Migrating instance to node-3.domain.tld finished successfully.",
        "migration_finished",
        {"host": "node-3.domain.tld"},
    ),
    ("Post live migration at destination node-3 failed", "post_dest_failed", {"host": "node-3"}),
    ("Unexpected error during post live migration at destination host.", "post_dest_failed", {}),
    (
        "Migration 42 aborted by another process, rollback.",
        "rollback",
        {"migration_id": "42"},
    ),
    ("Successfully cancelled queued live migration.", "queued_cancelled", {}),
    ("Unable to cancel live migration.", "queued_cancel_failed", {}),
    (
        "Network cleanup failed for destination host node-3 during live migration rollback. You "
        "may need to manually clean up resources in the network service. Error: timed out",
        "rollback_network_cleanup_failed",
        {"host": "node-3", "reason": "timed out"},
    ),
    (
        "An error occurred while cleaning up networking during live migration rollback.",
        "rollback_network_cleanup_failed",
        {},
    ),
    (
        "Instance found in migrating state during startup. Resetting task_state",
        "reset_on_startup",
        {},
    ),
    (
        "Migration 42 failed to submit as the compute service is shutting down.",
        "submit_refused",
        {"migration_id": "42"},
    ),
]


@pytest.mark.parametrize(("message", "kind", "expected"), SAMPLES, ids=lambda v: str(v)[:40])
def test_each_phase_message_becomes_its_marker_with_its_numbers(message, kind, expected):
    marker = recognise(message)

    assert marker is not None
    assert marker.kind == kind
    for name, value in expected.items():
        assert getattr(marker, name) == value, name


def test_every_marker_kind_is_exercised_and_lifecycle_states_are_named():
    assert {kind for _, kind, _ in SAMPLES} == set(MARKER_KINDS)
    assert "Postcopy started" in LIFECYCLE_STATES


@pytest.mark.parametrize(
    "message",
    [
        "Running periodic task ComputeManager._poll_unconfirmed_resizes",
        "Migration",
        "",
        "VM Paused",
        "Increasing downtime to many ms after 0 sec elapsed time",
        "Lock compute_resources acquired by migration",
    ],
)
def test_other_messages_are_not_markers(message):
    assert recognise(message) is None


def test_markers_are_immutable_values():
    assert recognise("Live migration stuck for 150 sec") == Marker(kind="stuck", duration_s=150.0)


def test_a_template_regex_tolerates_spacing_and_unit_glue():
    pattern = template_regex("Increasing downtime to %(downtime_ms)d ms after %(elapsed_s)d sec")

    assert pattern.match("Increasing downtime to 46ms after 0 sec").group("downtime_ms") == "46"
    assert pattern.match("Increasing  downtime to 46 ms after 0 sec  ")
    assert not pattern.match("Increasing downtime to 46 ms after 0 sec and more")


# Every phase template Nova has logged (research data extracted from each release's source),
# with the marker it must give: the catalogue follows Nova's own texts across releases.
NOVA_TEMPLATES = {
    "Going to try to live migrate instance to %s": "api_accepted",
    "Going to cancel live migration %s": "abort_requested",
    "Going to try to force live migration to complete": "force_complete_requested",
    "Unexpected exception received from conductor during pre-live-migration checks '%(ex)s'": (
        "precheck_failed"
    ),
    "Instance found in migrating state during startup. Resetting task_state": "reset_on_startup",
    "Live migration failed.": "driver_failed",
    "Migrating instance to %s finished successfully.": "migration_finished",
    "Post operation of migration started": "post_live_migration_dest",
    "Pre live migration failed at %s": "pre_live_migration_failed",
    "VM %(state)s (Lifecycle Event)": "lifecycle",
    "_post_live_migration() is started..": "post_live_migration_source",
    "Unexpected error during post live migration at destination host.": "post_dest_failed",
    "destination check data is %s": "check_destination",
    "driver pre_live_migration data is %s": "pre_live_migration_driver_done",
    "live_migration data is %s": "live_migration_data",
    "pre_live_migration data is %s": "pre_live_migration_start",
    "pre_live_migration result data is %s": "pre_live_migration_result",
    "source check data is %s": "check_source",
    "Post live migration at destination %s failed": "post_dest_failed",
    "An error occurred while cleaning up networking during live migration rollback.": (
        "rollback_network_cleanup_failed"
    ),
    "Binding ports to destination host: %s": "ports_binding",
    "Failed waiting for network virtual interfaces to be plugged on the destination host %s.": (
        "vif_plug_timeout"
    ),
    "Migration %s aborted by another process, rollback.": "rollback",
    "Migration %s failed to submit as the compute service is shutting down.": "submit_refused",
    "Network cleanup failed for destination host %s during live migration rollback. You may "
    "need to manually clean up resources in the network service. Error: %s": (
        "rollback_network_cleanup_failed"
    ),
    "Successfully cancelled queued live migration.": "queued_cancelled",
    "Took %0.2f seconds for pre_live_migration on destination host %s.": (
        "pre_live_migration_took"
    ),
    "Unable to cancel live migration.": "queued_cancel_failed",
    "Failed to abort live-migration": "abort_failed",
    "Migration of instance %(instance_id)s to host %(dest)s unexpectedly failed.": (
        "conductor_failed"
    ),
    "Skipping host: %(host)s because: %(e)s": "host_skipped",
    "Start binding ports on destination host: %s": "ports_binding",
    "Migration pre-check failed: The request does not explicitly request live-migratable "
    "devices.": "precheck_failed",
    "Checking to make sure images and backing files are present before live migration.": (
        "checking_images"
    ),
    "Connecting volumes before live migration.": "connecting_volumes",
    "Creating instance directory: %s": "creating_instance_dir",
    "Data remaining %(remaining)d bytes, low watermark %(watermark)d bytes %(last)d seconds ago": (
        "watermark"
    ),
    "Error %(ex)s, migration failed": "job_state_inferred",
    "Error monitoring migration: %(ex)s": "monitor_error",
    "Failed to abort migration %s": "abort_failed",
    "Fixed incorrect job type to be %d": "job_type_fixed",
    "Increasing downtime to %(downtime)dms after %(waittime)d sec elapsed time": (
        "downtime_increased"
    ),
    "Live Migration failure: %s": "live_migration_failure",
    "Live migration monitoring is all done": "monitor_done",
    "Live migration not completed after %d sec": "completion_timeout",
    "Live migration stuck for %d sec": "stuck",
    "Migration not running yet": "migration_not_running_yet",
    "Migration operation has aborted": "operation_aborted",
    "Migration operation has completed": "operation_completed",
    "Migration operation thread has finished": "operation_thread_finished",
    "Migration operation was cancelled": "operation_cancelled",
    "Migration running for %(secs)d secs, memory %(remaining)d%% remaining; (bytes "
    "processed=%(processed_memory)d, remaining=%(remaining_memory)d, total=%(total_memory)d)": (
        "progress"
    ),
    "Operation thread is still running": "operation_thread_running",
    "Plugging VIFs before live migration.": "plugging_vifs",
    "Starting monitoring of live migration": "monitor_started",
    "Unable to increase max downtime to %(time)dms: %(e)s": "downtime_increase_failed",
    "Unexpected migration job type: %d": "unexpected_job_type",
    "VM is missing, migration finished": "job_state_inferred",
    "VM is shutoff, migration finished": "job_state_inferred",
    "VM running on src, migration failed": "job_state_inferred",
    "migrate_data in pre_live_migration: %s": "pre_live_migration_driver_start",
    "plug_vifs() failed %(cnt)d. Retry up to %(max_retry)d.": "plug_vifs_retry",
    "Failed to cancel migration %s": "abort_failed",
    "Increasing downtime to %(downtime)d ms after %(waittime)d sec elapsed time": (
        "downtime_increased"
    ),
    "About to invoke the migrate API": "migrate_api_invoked",
    "Migrate API has completed": "migrate_api_completed",
    "Plugging VIFs using destination host port bindings before live migration.": "plugging_vifs",
    "Migration running for %(secs)d secs, memory %(remaining)d%% remaining (bytes "
    "processed=%(processed_memory)d, remaining=%(remaining_memory)d, total=%(total_memory)d); "
    "disk %(disk_remaining)d%% remaining (bytes processed=%(processed_disk)d, "
    "remaining=%(remaining_disk)d, total=%(total_disk)d).": "progress",
    "Error occured when trying to abort live ": "abort_failed",
    "Error occurred when trying to abort live ": "abort_failed",
    "Error occurred when trying to abort live migration job, ignoring it.": "abort_failed",
    "Current %(dt)s elapsed %(elapsed)d steps %(steps)s": "downtime_steps_listed",
    "Downtime does not need to change": "downtime_unchanged",
    "Failed to pause instance during live-migration %s": "pause_failed",
    "Failed to resume paused instance before live-migration rollback %s": "resume_failed",
    "Failed to switch to post-copy live migration: %s": "postcopy_switch_failed",
    "Live-migration %s already switched to post-copy mode.": "postcopy_already_switched",
    "No current step": "downtime_no_step",
    "Switching to post-copy migration mode": "postcopy_switch",
    "Unable to increase max downtime to %(time)d ms: %(e)s": "downtime_increase_failed",
}
RENDER_VALUES = {"state": "Paused", "steps": "[(0, 50), (75, 500)]", "dt": "50"}


def render(template: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name, conversion = match.group(1), match.group(3)
        if name in RENDER_VALUES:
            return RENDER_VALUES[name]
        return {"d": "42", "f": "1.50", "s": "node-3"}[conversion]

    return re.sub(r"%(?:\((\w+)\))?(0?\.\d+)?([dfs])|%%", value, template)


def nova_messages() -> list[dict]:
    return json.loads((DATA / "nova_log_messages.json").read_text())["messages"]


@pytest.mark.parametrize("template", sorted(NOVA_TEMPLATES), ids=lambda t: t[:50])
def test_nova_templates_of_every_release_are_recognised(template):
    known = {entry["template"] for entry in nova_messages()}
    assert template in known  # the template is Nova's, as the release data lists it

    marker = recognise(render(template))

    assert marker is not None and marker.kind == NOVA_TEMPLATES[template]


# Templates without any needle in their text; the relevant path still reaches them through the
# DEBUG location suffix (or JSON `funcname`), whose function or path names a migration.
REACHED_THROUGH_LOCATION = {"DEBUG"}
REACHED_BY_FOLLOWING = {
    # the INFO watermark line is logged right after the progress line it belongs to
    "Data remaining %(remaining)d bytes, low watermark %(watermark)d bytes %(last)d seconds ago",
    # logged with a traceback whose frames name the live-migration functions
    "Failed waiting for network virtual interfaces to be plugged on the destination host %s.",
    # the stray-comma bug in 24–31 means logging never writes these two
    "Error occured when trying to abort live ",
    "Error occurred when trying to abort live ",
}


# Known gaps of the relevant path (documented with RELEVANT_NEEDLES): reached only when they
# happen to follow a relevant record.
NOT_REACHED = {
    "plug_vifs() failed %(cnt)d. Retry up to %(max_retry)d.",
    "Binding ports to destination host: %s",
}


@pytest.mark.parametrize("template", sorted(NOVA_TEMPLATES), ids=lambda t: t[:50])
def test_the_relevant_path_can_reach_every_template(template):
    message = render(template).encode()
    if any(needle in message for needle in RELEVANT_NEEDLES):
        assert template not in REACHED_BY_FOLLOWING | NOT_REACHED
        return
    if template in REACHED_BY_FOLLOWING | NOT_REACHED:
        return
    entries = [e for e in nova_messages() if e["template"] == template]
    for entry in entries:
        assert entry["level"] == "debug", template
        location = " ".join(entry["functions"]) + " " + entry["logger"].replace(".", "/")
        assert "igrat" in location or "live_migrate" in location, template


@pytest.mark.parametrize(("message", "kind", "expected"), SAMPLES, ids=lambda v: str(v)[:40])
def test_the_cheap_pre_test_never_rules_out_a_marker(message, kind, expected):
    assert may_be_marker(message.encode())


def test_the_cheap_pre_test_rules_out_ordinary_lines():
    assert not may_be_marker(b"Lock compute_resources acquired by ResourceTracker :: waited 0.000s")
