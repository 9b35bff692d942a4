"""`lmes list`, `show` and `export` through the installed command, and their error paths."""

from __future__ import annotations

import csv
import io
import json

import pytest

from lmes.store import open_store
from tests.conftest import run_lmes
from tests.domain.test_migration import cancelled, completed


@pytest.fixture
def stored(lmes_home):
    store = open_store()
    done, aborted = completed(), cancelled()
    store.add(done, aborted)
    return done, aborted


def test_list_shows_every_migration_and_filters_by_status(stored):
    done, aborted = stored
    out = run_lmes("list")
    assert out.returncode == 0, out.stderr
    assert str(done.id)[:8] in out.stdout and str(aborted.id)[:8] in out.stdout
    rows = json.loads(run_lmes("list", "--status", "cancelled", "--json").stdout)
    assert [r["id"] for r in rows] == [str(aborted.id)]
    assert rows[0]["origin"] == "executor"
    assert rows[0]["copy_s"] == 11.0


def test_show_prints_the_timeline_by_id_prefix(stored):
    done, _ = stored
    out = run_lmes("show", str(done.id)[:6])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "MigrationRequested" in lines[2]
    assert "Completed" in lines[-1] and "new_host=node-3" in lines[-1]
    payload = json.loads(run_lmes("show", str(done.id), "--json").stdout)
    assert payload["migration"]["status"] == "completed"
    assert [e["event"] for e in payload["events"]][-1] == "Completed"


def test_export_writes_json_lines_and_csv(stored, tmp_path):
    done, aborted = stored
    lines = run_lmes("export").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["migration_id"] for e in events} == {str(done.id), str(aborted.id)}
    target = tmp_path / "events.csv"
    assert (
        run_lmes("export", "--format", "csv", "-o", str(target), "--status", "completed").returncode
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert {r["migration_id"] for r in rows} == {str(done.id)}
    assert rows[0]["event"] == "MigrationRequested"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["show", "0123456789"], {}, "no migration 0123456789"),
        (["show", "xyz"], {}, "is not a migration id"),
        (["list", "--status", "finished"], {}, "invalid choice"),
        (["list", "--since", "yesterday"], {}, "not an ISO time"),
        (["frobnicate"], {}, "invalid choice"),
        (["list"], {"LMES_STORE": "mysql://x/y"}, "unknown store URL"),
        (["list"], {"LMES_STORE": "postgresql://nobody@127.0.0.1:9/none"}, "cannot open the store"),
        (["export", "-o", "/nonexistent-dir/x.jsonl"], {}, "cannot write"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(stored, args, env, message):
    out = run_lmes(*args, env=env)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_a_failed_export_leaves_no_half_written_file(stored, tmp_path, monkeypatch):
    target = tmp_path / "events.jsonl"
    target.write_text("previous export\n")
    assert run_lmes("export", "-o", str(target)).returncode == 0
    assert target.read_text().startswith('{"migration_id"')
    assert not list(tmp_path.glob("*.partial"))
