"""`lmes replay` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO
from tests.replay.conftest import SEED

NODE_1 = str(SEED / "node-1" / "nova-compute.log")
NODE_3 = str(SEED / "node-3" / "nova-compute.log")
REQUIRED = {
    "id",
    "instance",
    "request_ids",
    "source_host",
    "dest_host",
    "outcome",
    "started_at",
    "ended_at",
    "phases",
    "downtime_steps",
    "inferred",
    "failure",
    "anomalies",
}


def lmes(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "lmes.cli", "replay", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        input=stdin,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_seed_as_json(tmp_path):
    result = lmes(NODE_1, NODE_3, "--json", "--no-store")
    assert result.returncode == 0, result.stderr
    [migration] = json.loads(result.stdout)
    assert migration.keys() >= REQUIRED
    assert migration["outcome"] == "completed"
    assert migration["downtime_steps"] == [[0.0, 46]]
    inferred = migration["inferred"]
    assert (
        inferred["ramp_form"],
        inferred["data_gb"],
        inferred["downtime_ms"],
        inferred["steps"],
        inferred["delay_s"],
    ) == ("exponential", 2.0, 500, 10, 75)
    assert migration["failure"] is None
    assert migration["phases"]["vif_wait"] > 2


def test_the_seed_as_a_report(tmp_path):
    result = lmes(str(SEED), env={"LMES_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(COMPLETED)" in out
    assert "node-1 -> node-3" in out
    assert "exponential: Liberty to Newton" in out
    assert "os-brick pre_live_migration on node-1" in out
    assert "store      new" in out
    again = lmes(str(SEED), env={"LMES_HOME": str(tmp_path)})
    assert "store      unchanged" in again.stdout


def test_standard_input_is_read_with_a_dash():
    with open(NODE_1) as source:
        result = lmes("-", "--json", "--no-store", stdin=source.read())
    assert result.returncode == 0, result.stderr
    [migration] = json.loads(result.stdout)
    assert migration["outcome"] == "completed"


def test_a_host_can_be_named_for_a_file():
    result = lmes(NODE_1, "--host", f"compute-a={NODE_1}", "--json", "--no-store")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["source_host"] == "compute-a"


def test_an_unreadable_path_is_one_line_and_status_2(tmp_path):
    result = lmes(str(tmp_path / "missing.log"), "--no-store")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("lmes: cannot read")
    assert "Traceback" not in result.stderr


def test_a_log_without_migration_is_an_empty_list_and_status_0(tmp_path):
    quiet = tmp_path / "nova-compute.log"
    quiet.write_text(
        "2024-05-06 09:00:00.000 1 INFO nova.compute.manager [-] Updating bandwidth usage cache\n"
    )
    as_json = lmes(str(quiet), "--json", "--no-store")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == []
    as_text = lmes(str(quiet), "--no-store")
    assert as_text.returncode == 0
    assert as_text.stdout.startswith("No live migration found in 1 lines")


def test_a_malformed_host_mapping_is_one_line_and_status_2():
    result = lmes(NODE_1, "--host", "node-1", "--no-store")
    assert result.returncode == 2
    assert result.stderr == "lmes: host mapping 'node-1' is not HOST=PATH\n"


def test_workers_give_the_same_answer_as_one_process(tmp_path):
    one = lmes(str(SEED), "--json", "--no-store", "--jobs", "1")
    two = lmes(str(SEED), "--json", "--no-store", "--jobs", "2")
    assert json.loads(one.stdout) == json.loads(two.stdout)
    refused = lmes(str(SEED), "--no-store", "--jobs", "0")
    assert (refused.returncode, refused.stderr) == (2, "lmes: --jobs must be at least 1, not 0\n")
