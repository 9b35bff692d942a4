"""Command-line flags for Nova's live-migration options, shared by every command that needs them.

Precedence is Nova's own: the release's defaults, then a nova.conf, then the flags given.
"""

from __future__ import annotations

import argparse

from lmes.domain.releases import Release
from lmes.domain.settings import OPTIONS, Settings
from lmes.errors import UserError
from lmes.novaconf import read_nova_conf

_METAVARS = {
    "live_migration_downtime": "MS",
    "live_migration_downtime_delay": "S",
    "live_migration_completion_timeout": "S",
    "live_migration_progress_timeout": "S",
    "live_migration_bandwidth": "MIB",
    "vif_plugging_timeout": "S",
}


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --release, --nova-conf and one flag per Nova option to `parser`."""
    group = parser.add_argument_group("Nova settings (release defaults < --nova-conf < flags)")
    group.add_argument(
        "--release",
        metavar="NAME|N",
        help=f"Nova release to imitate, by name or major version (default {Release.newest()})",
    )
    group.add_argument("--nova-conf", metavar="FILE", help="read the options from this nova.conf")
    for spec in OPTIONS:
        flag = "--" + spec.name.replace("_", "-")
        section = f"[{spec.section}] "
        if spec.kind is bool:
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=section + spec.help,
            )
        elif spec.choices:
            group.add_argument(flag, choices=spec.choices, default=None, help=section + spec.help)
        else:
            group.add_argument(
                flag,
                type=int,
                default=None,
                metavar=_METAVARS.get(spec.name, "N"),
                help=section + spec.help,
            )


def release_from_args(args: argparse.Namespace) -> Release:
    """The release named by --release, or the newest one."""
    if not args.release:
        return Release.newest()
    try:
        return Release.parse(args.release)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings the flags ask for: release defaults, then --nova-conf, then option flags."""
    release = release_from_args(args)
    if args.nova_conf:
        settings = read_nova_conf(args.nova_conf, release)
    else:
        settings = Settings.defaults(release)
    overrides = {
        spec.name: getattr(args, spec.name)
        for spec in OPTIONS
        if getattr(args, spec.name, None) is not None
    }
    try:
        return settings.with_overrides(**overrides)
    except ValueError as exc:
        raise UserError(str(exc)) from None
