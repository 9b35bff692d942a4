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

COMMANDS = [
    "policy",
    "browse",
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit status 2, like every user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lmes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"lmes.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
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
