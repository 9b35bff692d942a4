"""`lmes notebooks`: JupyterLab on the studies in `notebooks/`, with the store already chosen.

The notebooks open the store named by `LMES_STORE` (else the SQLite file in `LMES_HOME`), so
this command exports both, resolved to absolute paths, before it starts JupyterLab: what a
notebook reads is the store the rest of `lmes` has been writing to.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

from lmes.errors import UserError
from lmes.home import lmes_home
from lmes.store import default_store_url

CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 8888


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "notebooks",
        help="open JupyterLab on the lmes notebooks, with the store configured",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=CHECKOUT / "notebooks",
        help="folder of notebooks (default: the notebooks/ of this lmes checkout)",
    )
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    parser.add_argument(
        "--store", metavar="URL", help="event store (default: $LMES_STORE, else $LMES_HOME)"
    )
    parser.add_argument(
        "--print-command",
        action="store_true",
        help="print the environment and command instead of starting JupyterLab",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = args.dir.resolve()
    if not folder.is_dir():
        raise UserError(f"no notebooks folder at {folder}: pass --dir FOLDER")
    env, command = jupyter_command(folder, args.port, args.no_browser, args.store)
    if args.print_command:
        assignments = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
        print(" ".join([*assignments, *map(shlex.quote, command)]))
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise UserError("JupyterLab is not installed: pip install 'lmes[notebooks]'")
    return subprocess.call(command, env={**os.environ, **env})


def jupyter_command(
    folder: Path, port: int, no_browser: bool, store_url: str | None
) -> tuple[dict[str, str], list[str]]:
    """The environment to export and the command that starts JupyterLab on `folder`."""
    home = lmes_home().resolve()
    env = {
        "LMES_HOME": str(home),
        "LMES_STORE": store_url or default_store_url(),
        "PYTHONPATH": os.pathsep.join(
            dict.fromkeys(
                p for p in (str(CHECKOUT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)) if p
            )
        ),
    }
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", f"--port={port}"]
    if no_browser:
        command.append("--no-browser")
    if os.geteuid() == 0:  # JupyterLab refuses root unless told; containers often run as root
        command.append("--allow-root")
    return env, command


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port
