"""The store on real SQLite files and a real PostgreSQL server: events survive the process
that wrote them, and two processes appending to one migration at once lose nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from lmes.store import open_store
from tests.domain.test_migration import at, queued, running

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from uuid import UUID
    from lmes.store import open_store

    url, migration_id, tag, count = sys.argv[1], UUID(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    store = open_store(url)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(count):
        store.change(
            migration_id,
            lambda m, i=i: m.report_progress(
                elapsed_s=float(i), iteration=i, at=t0 + timedelta(seconds=i),
                memory_total_bytes=1000, memory_remaining_bytes=1000 - i,
                memory_processed_bytes=hash(tag) % 1000,
            ),
        )
    """
)

READER = textwrap.dedent(
    """
    import json, sys
    from lmes.store import open_store
    store = open_store(sys.argv[1])
    print(json.dumps([[type(e).__name__, str(e.originator_id), e.originator_version,
                       e.timestamp.isoformat()] for e in store.all_events()]))
    """
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, lmes_home):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'lmes.sqlite'}"
    server = request.getfixturevalue("postgres_url")
    name = f"lmes_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + "/" + name


def running_migration(store_url: str):
    store = open_store(store_url)
    migration = running()
    store.add(migration)
    return store, migration


def test_events_written_by_one_process_are_read_back_by_another(store_url):
    store, migration = running_migration(store_url)
    written = [
        [type(e).__name__, str(e.originator_id), e.originator_version, e.timestamp.isoformat()]
        for e in store.all_events()
    ]
    store.close()
    out = subprocess.run(
        [sys.executable, "-c", READER, store_url], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == written
    assert written[0][0] == "MigrationRequested"
    assert written[-1][0] == "MigrationStarted"


def test_two_processes_appending_to_one_migration_lose_nothing(store_url):
    store, migration = running_migration(store_url)
    start_version = migration.version
    count = 30
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, str(migration.id), tag, str(count)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("executor", "abort-cli")
    ]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    again = open_store(store_url).migration(migration.id)
    assert again.version == start_version + 2 * count
    assert again.progress_reports == 2 * count
    events = [e for e in open_store(store_url).all_events() if e.originator_id == migration.id]
    versions = [e.originator_version for e in events]
    assert versions == list(range(1, again.version + 1)), "no gap, no duplicate"
    per_writer = {}
    for e in events:
        if type(e).__name__ == "ProgressReported":
            per_writer.setdefault(e.memory_processed_bytes, []).append(e.iteration)
    assert sorted(len(v) for v in per_writer.values()) == [count, count]
    assert all(sorted(v) == list(range(count)) for v in per_writer.values())


def test_a_stale_copy_is_refused_and_change_retries_on_the_fresh_one(lmes_home):
    store = open_store()
    migration = running()
    store.add(migration)
    stale = store.repository.get(migration.id)
    store.change(migration.id, lambda m: m.request_abort(by="cli", at=at(30)))
    stale.request_force_complete(by="api", at=at(31))
    with pytest.raises(IntegrityError):
        store.save(stale)
    # the fresh copy re-checks the rule: still running, so force-complete lands after the abort
    store.change(migration.id, lambda m: m.request_force_complete(by="api", at=at(31)))
    fresh = store.migration(migration.id)
    assert (fresh.abort_requested_by, fresh.force_complete_requested_by) == ("cli", "api")


def test_the_default_store_is_a_sqlite_file_in_lmes_home(lmes_home):
    store = open_store()
    store.add(queued())
    assert (lmes_home / "lmes.sqlite").is_file()
    assert len(list(open_store().migrations())) == 1
