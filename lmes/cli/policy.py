"""`lmes policy`: the numbers Nova would use for one migration, before running it.

Shows how much data Nova counts, the downtime ramp it would walk, the completion timeout and
which of Nova's release-dependent rules apply, for the release and settings given.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lmes.cli.settings_args import add_settings_arguments, settings_from_args
from lmes.domain import policy
from lmes.domain.settings import Settings
from lmes.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="show Nova's downtime ramp and timeouts for one migration",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--memory-mb", type=int, required=True, metavar="M", help="flavor RAM in MB"
    )
    parser.add_argument(
        "--disk-gb",
        type=float,
        action="append",
        default=[],
        metavar="G",
        help="size of a disk copied by block migration, GiB (repeat for each disk)",
    )
    parser.add_argument(
        "--py2-int-division",
        action="store_true",
        help="compute as Nova on Python 2 did (integer divisions; Newton to Train deployments)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    report = policy_report(settings, args.memory_mb, args.disk_gb, args.py2_int_division)
    for warning in report["warnings"]:
        print(f"lmes: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_text(report))
    return 0


def policy_report(
    settings: Settings, memory_mb: int, disk_gb: list[float], py2_int_division: bool
) -> dict[str, Any]:
    """Everything `lmes policy` shows, as a JSON-ready dict."""
    if any(size < 0 for size in disk_gb):
        raise UserError("--disk-gb must not be negative")
    disk_sizes_bytes = [int(size * policy.GIB_BYTES) for size in disk_gb]
    try:
        gb = policy.data_gb(memory_mb, disk_sizes_bytes, py2_int_division=py2_int_division)
        steps = policy.downtime_steps(
            settings.live_migration_downtime,
            settings.live_migration_downtime_steps,
            settings.live_migration_downtime_delay,
            gb,
            settings.release,
            py2_int_division=py2_int_division,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    rules = policy.rules_for(settings.release)
    completion_s = (
        policy.completion_timeout_s(settings.live_migration_completion_timeout, gb)
        if rules.completion_timeout_applies
        else 0
    )
    return {
        "release": settings.release.name,
        "release_major": settings.release.major,
        "data_gb": gb,
        "ramp_form": rules.ramp_form.value,
        "downtime_steps": [list(step) for step in steps],
        "completion_timeout_s": completion_s,
        "rules": _applied_rules(settings, rules),
        "warnings": settings.warnings(),
        "settings": settings.as_dict(),
    }


def _applied_rules(settings: Settings, rules: policy.ReleaseRules) -> dict[str, Any]:
    """Which release-dependent rules apply, with the values they use."""
    progress_timeout_s = (
        settings.live_migration_progress_timeout if rules.progress_timeout_applies else None
    )
    if rules.timeout_action_applies:
        action = settings.live_migration_timeout_action
    elif rules.completion_timeout_applies:
        action = "abort"
    else:
        action = None
    force_complete = policy.force_complete_effect(
        "running", settings.live_migration_permit_post_copy
    )
    return {
        "below_minimum": rules.below_minimum.value,
        "progress_timeout_s": progress_timeout_s or None,
        "progress_timeout_in_release": rules.progress_timeout_applies,
        "auto_post_copy": rules.auto_post_copy_applies and settings.live_migration_permit_post_copy,
        "auto_post_copy_in_release": rules.auto_post_copy_applies,
        "timeout_action": action,
        "force_complete": force_complete.value,
    }


def render_text(report: dict[str, Any]) -> str:
    """The report as a short summary followed by the ramp table."""
    rules = report["rules"]
    settings = report["settings"]
    completion_s = report["completion_timeout_s"]
    completion = (
        f"{completion_s} s ({settings['live_migration_completion_timeout']} s/GiB"
        f" x {_number(report['data_gb'])} GiB)"
        if completion_s
        else "off"
    )
    if rules["progress_timeout_s"]:
        progress = f"{rules['progress_timeout_s']} s without progress aborts"
    elif rules["progress_timeout_in_release"]:
        progress = "off"
    else:
        progress = "not in this release"
    if rules["auto_post_copy"]:
        auto_post_copy = "on: switches when an iteration copies under 10 %"
    elif rules["auto_post_copy_in_release"]:
        auto_post_copy = "off: post-copy not permitted"
    else:
        auto_post_copy = "not in this release"
    action = rules["timeout_action"] or "none"
    if action == "force_complete":
        action += f" ({rules['force_complete'].replace('_', ' ')})"
    lines = [
        f"Nova {report['release']} ({report['release_major']})",
        f"  data_gb               {_number(report['data_gb'])}",
        f"  completion timeout    {completion}",
        f"  on completion timeout {action}",
        f"  progress timeout      {progress}",
        f"  automatic post-copy   {auto_post_copy}",
        f"  downtime ramp         {report['ramp_form']}",
    ]
    if report["downtime_steps"]:
        lines += ["", "  step   at_s  downtime_ms"]
        lines += [
            f"  {index:>4} {at_s:>6} {downtime_ms:>12}"
            for index, (at_s, downtime_ms) in enumerate(report["downtime_steps"])
        ]
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
