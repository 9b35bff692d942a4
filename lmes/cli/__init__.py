"""The `lmes` command: a thin entry point that hands each subcommand to its own module.

Each module in `COMMANDS` exposes `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lmes.domain.errors import DomainError
from lmes.errors import UserError

# Each subcommand and the module that registers it. Only the module of the command asked for
# is imported, so `lmes abort` does not pay for pandas, matplotlib or SimPy.
COMMANDS = {
    "demo": "demo",
    "lab": "lab",
    "hosts": "hosts",
    "instances": "instances",
    "migrate": "migrate",
    "abort": "control",
    "force-complete": "control",
    "recover": "recover",
    "policy": "policy",
    "replay": "replay",
    "list": "browse",
    "show": "browse",
    "export": "browse",
    "simulate": "simulate",
    "evacuate": "evacuate",
    "sweep": "sweep",
    "calibrate": "calibrate",
    "report": "report",
    "notebooks": "notebooks",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit status 2, like every user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for one command when it is known, else for all of them (help, errors)."""
    parser = _Parser(
        prog="lmes",
        description="VM live migrations as event streams: execute them through libvirt as Nova "
        "does, replay nova logs, simulate with SimPy. With no command: the bundled demo.",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module in modules:
        importlib.import_module(f"lmes.cli.{module}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else argv
        parser = build_parser(argv[0] if argv else "demo")
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            from lmes.cli.demo import run as run_demo

            return run_demo(args)
        return int(args.func(args) or 0)
    except (UserError, DomainError) as exc:
        print(f"lmes: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmes: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
