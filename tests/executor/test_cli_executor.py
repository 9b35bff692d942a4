"""The executor's commands refuse bad input with one clear line and exit status 2."""

from __future__ import annotations

import pytest

from lmes.cli import main
from lmes.domain.migration import Migration
from lmes.executor.workflow import utc_now
from lmes.store import open_store


@pytest.fixture
def lmes(capsys, lmes_home):
    def run(*arguments: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(arguments))
        out, err = capsys.readouterr()
        return status, out, err

    return run


def assert_refused(result, words: str) -> None:
    status, out, err = result
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and words in err


def test_a_missing_hosts_file_is_one_line(lmes, tmp_path):
    missing = tmp_path / "nowhere.toml"
    for command in ("hosts", "instances", "recover"):
        assert_refused(lmes(command, "--hosts-file", str(missing)), "does not exist")
    assert_refused(lmes("migrate", "web", "--hosts-file", str(missing)), "does not exist")


def test_a_broken_hosts_file_is_one_line(lmes, tmp_path):
    broken = tmp_path / "hosts.toml"
    broken.write_text("[[hosts]]\nname = 'a'\n")
    assert_refused(lmes("hosts", "--hosts-file", str(broken)), "missing 'uri'")


def test_bad_flags_are_refused(lmes):
    assert_refused(lmes("migrate", "web", "--block-migration", "maybe"), "invalid choice")
    assert_refused(lmes("migrate", "web", "--live-migration-bandwidth", "fast"), "invalid int")
    assert_refused(lmes("migrate", "web", "--release", "nonsense"), "unknown Nova release")


def test_control_requests_on_unknown_or_ended_migrations_record_nothing(lmes, lmes_home):
    assert_refused(lmes("abort", "0123abcd"), "no migration 0123abcd")
    assert_refused(lmes("force-complete", "xyz"), "is not a migration id")
    store = open_store()
    replayed = Migration.request(instance="web", at=utc_now(), origin="replay", source_host="a")
    queued = Migration.request(instance="db", at=utc_now(), origin="executor", source_host="a")
    queued.select_destination("b", attempt=1, at=utc_now())
    queued.queue(data_gb=2, downtime_steps=[(0, 50)], completion_timeout_s=1600, at=utc_now())
    store.add(replayed, queued)
    before = len(list(store.all_events()))
    assert_refused(lmes("abort", str(replayed.id)), "recorded by replay")
    assert_refused(lmes("force-complete", str(queued.id)), "is queued")
    assert len(list(open_store().all_events())) == before
    status, out, _ = lmes("abort", str(queued.id)[:8])
    assert status == 0 and "abort requested" in out
