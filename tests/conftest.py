"""Fixtures shared by the whole suite: an isolated LMES_HOME, and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@pytest.fixture
def lmes_home(tmp_path, monkeypatch) -> Path:
    """A fresh data folder, so each test starts with an empty default store."""
    home = tmp_path / "lmes-home"
    monkeypatch.setenv("LMES_HOME", str(home))
    monkeypatch.delenv("LMES_STORE", raising=False)
    return home


INSTALLED_LMES = Path(sys.executable).parent / "lmes"
LMES_COMMAND = (
    [str(INSTALLED_LMES)] if INSTALLED_LMES.exists() else [sys.executable, "-m", "lmes.cli"]
)


def run_lmes(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed `lmes` command as a user would (the one beside the tests' Python)."""
    return subprocess.run(
        [*LMES_COMMAND, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=input,
        timeout=timeout,
        cwd=REPO,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL server for the session: `$LMES_TEST_POSTGRES` if CI started one,
    else a throw-away cluster initialised in a temporary folder, listening on loopback."""
    given = os.environ.get("LMES_TEST_POSTGRES")
    if given:
        yield given
        return
    if not PG_BIN_CANDIDATES:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    bin_dir = PG_BIN_CANDIDATES[0]
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="lmes-pg-"))
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = _free_port()
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off"
    )
    subprocess.run(
        [
            *as_postgres,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(folder / "server.log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                *as_postgres,
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "lmes_test",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/lmes_test"
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)
