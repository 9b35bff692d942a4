"""`lmes notebooks`: the JupyterLab command it would start, with the store exported."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from tests.conftest import REPO, run_lmes


def _printed(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    result = run_lmes("notebooks", "--print-command", *args, env=env)
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout)
    env_words = [w for w in words if "=" in w and w.split("=")[0].isupper()]
    exported = dict(w.split("=", 1) for w in env_words)
    return exported, words[len(env_words) :]


def test_it_exports_the_store_and_starts_jupyterlab_on_the_notebooks(lmes_home):
    exported, command = _printed("--no-browser", "--port", "9123")
    assert exported["LMES_HOME"] == str(lmes_home.resolve())
    assert exported["LMES_STORE"] == f"sqlite:///{lmes_home.resolve() / 'lmes.sqlite'}"
    assert str(REPO) in exported["PYTHONPATH"].split(":")
    assert command[1:3] == ["-m", "jupyterlab"]
    assert f"--notebook-dir={REPO / 'notebooks'}" in command
    assert "--port=9123" in command and "--no-browser" in command
    assert ("--allow-root" in command) == (os.geteuid() == 0)


def test_a_chosen_store_and_folder_are_passed_on(lmes_home, tmp_path):
    exported, command = _printed("--store", "memory:", "--dir", str(tmp_path))
    assert exported["LMES_STORE"] == "memory:"
    assert f"--notebook-dir={tmp_path}" in command
    assert "--no-browser" not in command


def test_the_store_from_the_environment_is_kept(lmes_home):
    url = f"sqlite:///{lmes_home / 'other.sqlite'}"
    exported, _ = _printed(env={"LMES_STORE": url})
    assert exported["LMES_STORE"] == url


def test_bad_port_or_folder_is_one_line_exit_2(lmes_home, tmp_path):
    for args, message in (
        (["--port", "99999"], "port 99999 is outside 1-65535"),
        (["--dir", str(tmp_path / "missing")], "no notebooks folder at"),
    ):
        result = run_lmes("notebooks", "--print-command", *args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr
    assert not Path(tmp_path / "missing").exists()
