"""Which plain lines the log sources parse: those under a request id a marker has carried, read
the way the line parser reads it, whatever context shape the release writes."""

from __future__ import annotations

import pytest

from lmes.replay.sources import LogSources
from tests.replay.conftest import compute_log

INSTANCE = "4b2e6a8c-1d3f-4e5a-9b7c-2d4f6a8c0e1b"
LOCAL = "req-0c000001-0000-4000-8000-000000000001"
GLOBAL = "req-0c000002-0000-4000-8000-000000000002"
OTHER = "req-0c000003-0000-4000-8000-000000000003"


def lines(context: str, periodic_context: str) -> str:
    return (
        f"2024-05-06 09:00:00.000 9 DEBUG nova.compute.manager {context} [instance: {INSTANCE}] "
        f"source check data is LibvirtLiveMigrateData(block_migration=False)\n"
        f"2024-05-06 09:00:05.000 9 DEBUG os_brick.utils {context} <== pre_live_migration: "
        f"return (5109ms) None trace_logging_wrapper /usr/lib/os_brick/utils.py:165\n"
        f"2024-05-06 09:00:06.000 9 DEBUG oslo_service.periodic_task {periodic_context} Running "
        f"periodic task ComputeManager._cleanup_incomplete_migrations run_periodic_tasks "
        f"/usr/lib/oslo_service/periodic_task.py:210\n"
    )


@pytest.mark.parametrize(
    ("context", "periodic_context"),
    [
        (f"[{LOCAL} admin admin - - -]", f"[{OTHER} - - - - -]"),
        (f"[None {LOCAL} admin admin - - default default]", f"[None {OTHER} - - - - - -]"),
        (f"[{GLOBAL} {LOCAL} admin admin - - default default]", f"[{LOCAL} {OTHER} - - - - -]"),
    ],
)
def test_a_plain_line_is_parsed_under_a_marked_request_only(tmp_path, context, periodic_context):
    log = compute_log(tmp_path, "compute-01", lines(context, periodic_context))
    sources = LogSources([(0, str(log), "compute-01")], 2024, 1 << 16)

    messages = [sighting.record.message for *_, sighting in sources.sightings()]

    assert len(messages) == 2
    assert messages[1].startswith("<== pre_live_migration: return (5109ms)")
    assert sources.lines_read == 3
