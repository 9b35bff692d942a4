"""`lmes policy`, run as a user runs it: a separate process, real nova.conf files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_lmes
from tests.seed import SEED_RAMP_JSON as SEED_RAMP

DATA = Path(__file__).resolve().parent / "data"


def policy_json(*args: str) -> dict:
    result = run_lmes("policy", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_user_error(result, fragment: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lmes: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_newton_defaults_give_the_seed_ramp() -> None:
    report = policy_json("--memory-mb", "2048", "--release", "newton")
    assert report["release"] == "Newton"
    assert report["ramp_form"] == "exponential"
    assert report["data_gb"] == 2
    assert report["downtime_steps"] == SEED_RAMP
    assert report["completion_timeout_s"] == 1600
    assert report["rules"]["progress_timeout_s"] == 150
    assert report["rules"]["timeout_action"] == "abort"
    assert report["settings"]["live_migration_downtime"] == 500
    assert report["warnings"] == []


def test_the_newest_release_is_the_default_and_ramps_linearly() -> None:
    report = policy_json("--memory-mb", "2048")
    assert report["release"] == "2026.1"
    assert report["ramp_form"] == "linear"
    assert report["downtime_steps"][0] == [0, 50]
    assert report["downtime_steps"][-1] == [1500, 500]
    assert report["rules"]["progress_timeout_s"] is None
    assert report["rules"]["auto_post_copy"] is False


def test_block_migration_disks_scale_the_ramp_and_the_timeout() -> None:
    report = policy_json("--memory-mb", "2048", "--disk-gb", "10", "--disk-gb", "1.5")
    assert report["data_gb"] == 14
    assert report["completion_timeout_s"] == 800 * 14
    assert report["downtime_steps"][1][0] == 75 * 14


def test_flags_override_the_nova_conf_which_overrides_the_defaults() -> None:
    conf = str(DATA / "nova.conf")
    report = policy_json("--memory-mb", "4096", "--nova-conf", conf, "--release", "2024.1")
    assert report["settings"]["live_migration_downtime"] == 400
    assert report["downtime_steps"][1] == [120, 76]
    assert report["completion_timeout_s"] == 1200 * 4
    assert report["rules"]["timeout_action"] == "force_complete"
    assert report["rules"]["force_complete"] == "switch_to_post_copy"
    report = policy_json(
        "--memory-mb",
        "4096",
        "--nova-conf",
        conf,
        "--live-migration-downtime",
        "1000",
        "--no-live-migration-permit-post-copy",
    )
    assert report["downtime_steps"][-1] == [1200, 1000]
    assert report["rules"]["force_complete"] == "pause"


def test_text_output_shows_the_ramp_table() -> None:
    result = run_lmes("policy", "--memory-mb", "2048", "--release", "14")
    assert result.returncode == 0, result.stderr
    assert "Nova Newton (14)" in result.stdout
    assert "1600 s" in result.stdout
    assert "150 s without progress aborts" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [[int(at_s), int(ms)] for _, at_s, ms in rows] == SEED_RAMP


def test_python_2_division_changes_the_data_and_the_last_step() -> None:
    report = policy_json("--memory-mb", "3000", "--release", "newton", "--py2-int-division")
    assert report["data_gb"] == 2
    report = policy_json("--memory-mb", "3000", "--release", "newton")
    assert report["downtime_steps"][1][0] == 219


def test_ocata_raises_a_small_downtime_and_warns() -> None:
    result = run_lmes(
        "policy", "--memory-mb", "2048", "--release", "ocata", "--json",
        "--nova-conf", str(DATA / "nova.conf.below_minimum"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["downtime_steps"][-1] == [150 * 3, 100]
    assert "live_migration_downtime = 50 is below the minimum 100" in result.stderr


def test_pike_refuses_a_downtime_below_minimum() -> None:
    result = run_lmes(
        "policy", "--memory-mb", "2048", "--release", "pike",
        "--nova-conf", str(DATA / "nova.conf.below_minimum"),
    )  # fmt: skip
    assert_user_error(result, "refuses to start")
    result = run_lmes(
        "policy", "--memory-mb", "2048", "--release", "pike", "--live-migration-downtime", "99"
    )
    assert_user_error(result, "live_migration_downtime = 99 is below its minimum 100")


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_user_error(run_lmes("policy", "--memory-mb", "-1"), "must not be negative")
    assert_user_error(run_lmes("policy", "--memory-mb", "2048", "--disk-gb", "-3"), "negative")
    assert_user_error(run_lmes("policy"), "--memory-mb")
    assert_user_error(
        run_lmes("policy", "--memory-mb", "2048", "--release", "havana2"), "unknown Nova release"
    )
    missing = tmp_path / "missing.conf"
    assert_user_error(
        run_lmes("policy", "--memory-mb", "2048", "--nova-conf", str(missing)),
        f"cannot read nova.conf {missing}",
    )
    broken = tmp_path / "broken.conf"
    broken.write_text("[libvirt]\nlive_migration_downtime = fast\n", encoding="utf-8")
    assert_user_error(
        run_lmes("policy", "--memory-mb", "2048", "--nova-conf", str(broken)),
        "[libvirt] live_migration_downtime = 'fast' is not an integer",
    )
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe\x00[libvirt]")
    assert_user_error(
        run_lmes("policy", "--memory-mb", "2048", "--nova-conf", str(binary)), "not UTF-8"
    )
    assert_user_error(
        run_lmes(
            "policy", "--memory-mb", "2048", "--release", "newton",
            "--live-migration-timeout-action", "force_complete",
        ),
        "does not exist in Nova Newton",
    )  # fmt: skip
    assert_user_error(
        run_lmes("policy", "--memory-mb", "2048", "--live-migration-timeout-action", "pause"),
        "invalid choice",
    )
