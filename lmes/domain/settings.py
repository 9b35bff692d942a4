"""The Nova options that shape a live migration, with Nova's names, defaults and limits.

A migration records the settings it ran under (the `MigrationRequested` event stores them), so
`Settings` is a plain value that turns into a JSON-ready dict and back. The defaults and the
handling of values below an option's minimum follow the release being imitated: up to Ocata 15
Nova raised a too-small ramp option to its minimum, from Pike 16 oslo.config refuses to start.

Reading the text of a real nova.conf lives here too (it is pure parsing); opening the file is
the caller's business.
"""

from __future__ import annotations

import configparser
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lmes.domain.policy import (
    BelowMinimumHandling,
    SettingBelowMinimum,
    ramp_below_minimums,
    refusal_message,
    rules_for,
)
from lmes.domain.releases import Release

TIMEOUT_ACTIONS = ("abort", "force_complete")

# The strings oslo.config accepts for a boolean, lower-cased.
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})

# From this major on, oslo.config's `min=` guards the options (and refuses values below it).
_OSLO_MIN_SINCE_MAJOR = 16


class SettingsError(ValueError):
    """A setting value Nova would not accept: wrong type, unknown choice, unknown option."""


@dataclass(frozen=True)
class OptionSpec:
    """How one Nova option is spelt, typed and bounded, and in which releases it exists."""

    name: str
    section: str
    kind: type
    help: str
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    first_major: int = 0
    last_major: int | None = None

    def exists_in(self, release: Release) -> bool:
        return self.first_major <= release.major and (
            self.last_major is None or release.major <= self.last_major
        )


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "live_migration_downtime",
        "libvirt",
        int,
        "maximum downtime to reach, ms",
        100,
        first_major=12,
    ),
    OptionSpec(
        "live_migration_downtime_steps",
        "libvirt",
        int,
        "steps of the downtime ramp",
        3,
        first_major=12,
    ),
    OptionSpec(
        "live_migration_downtime_delay",
        "libvirt",
        int,
        "seconds per GiB between ramp steps",
        3,
        first_major=12,
    ),
    OptionSpec(
        "live_migration_completion_timeout",
        "libvirt",
        int,
        "seconds per GiB before the timeout action (0 = off)",
        0,
        first_major=12,
    ),
    OptionSpec(
        "live_migration_timeout_action",
        "libvirt",
        str,
        "what to do on completion timeout",
        choices=TIMEOUT_ACTIONS,
        first_major=19,
    ),
    OptionSpec(
        "live_migration_permit_post_copy",
        "libvirt",
        bool,
        "allow switching to post-copy",
        first_major=14,
    ),
    OptionSpec(
        "live_migration_permit_auto_converge",
        "libvirt",
        bool,
        "allow auto-converge (CPU throttling); ignored when post-copy is permitted",
        first_major=14,
    ),
    OptionSpec(
        "live_migration_bandwidth",
        "libvirt",
        int,
        "bandwidth cap in MiB/s (0 = hypervisor default)",
        0,
    ),
    OptionSpec(
        "live_migration_progress_timeout",
        "libvirt",
        int,
        "seconds without progress before aborting (0 = off)",
        0,
        first_major=12,
        last_major=18,
    ),
    OptionSpec(
        "max_concurrent_live_migrations",
        "DEFAULT",
        int,
        "live migrations a compute host runs at once (0 = unlimited)",
        0,
    ),
    OptionSpec(
        "migrate_max_retries",
        "conductor",
        int,
        "destinations to retry after a failed pre-check (-1 = until hosts run out)",
        -1,
        first_major=15,
    ),
    OptionSpec(
        "live_migration_wait_for_vif_plug",
        "compute",
        bool,
        "wait for the destination's VIFs before migrating",
        first_major=18,
    ),
    OptionSpec("vif_plugging_is_fatal", "DEFAULT", bool, "fail when VIF plugging times out"),
    OptionSpec("vif_plugging_timeout", "DEFAULT", int, "seconds to wait for VIF plugging", 0),
)

_OPTIONS_BY_NAME = {spec.name: spec for spec in OPTIONS}
_RAMP_OPTIONS = (
    "live_migration_downtime",
    "live_migration_downtime_steps",
    "live_migration_downtime_delay",
)


@dataclass(frozen=True)
class Settings:
    """Nova's live-migration options as one release reads them.

    An option that does not exist in `release` keeps the value that matches what that release
    did without it (no progress timeout after Rocky, a plain abort before Stein, no post-copy
    before Newton, no waiting for VIFs before Rocky).
    """

    live_migration_downtime: int = 500
    live_migration_downtime_steps: int = 10
    live_migration_downtime_delay: int = 75
    live_migration_completion_timeout: int = 800
    live_migration_timeout_action: str = "abort"
    live_migration_permit_post_copy: bool = False
    live_migration_permit_auto_converge: bool = False
    live_migration_bandwidth: int = 0
    live_migration_progress_timeout: int = 0
    max_concurrent_live_migrations: int = 1
    migrate_max_retries: int = -1
    live_migration_wait_for_vif_plug: bool = True
    vif_plugging_is_fatal: bool = True
    vif_plugging_timeout: int = 300
    release: Release = field(default_factory=Release.newest)

    def __post_init__(self) -> None:
        if not isinstance(self.release, Release):
            raise SettingsError(f"release must be a Release, got {self.release!r}")
        for spec in OPTIONS:
            _check_type(spec, getattr(self, spec.name))
        refuses = rules_for(self.release).below_minimum is BelowMinimumHandling.REFUSE
        below = ramp_below_minimums(
            self.live_migration_downtime,
            self.live_migration_downtime_steps,
            self.live_migration_downtime_delay,
            self.release,
        )
        if below and refuses:
            raise SettingBelowMinimum(refusal_message(below[0], self.release))
        if self.release.major >= _OSLO_MIN_SINCE_MAJOR:
            for spec in OPTIONS:
                value = getattr(self, spec.name)
                if spec.name in _RAMP_OPTIONS or spec.minimum is None:
                    continue
                if value < spec.minimum:
                    raise SettingBelowMinimum(
                        f"{spec.name} = {value} is below its minimum {spec.minimum}; "
                        f"Nova {self.release} refuses to start with it"
                    )

    @classmethod
    def defaults(cls, release: Release | None = None) -> Settings:
        """Nova's defaults in `release` (the newest release when none is given)."""
        release = release or Release.newest()
        major = release.major
        return cls(
            # Newton's default was 150 s; Ocata set it to 0 and Stein removed the option.
            live_migration_progress_timeout=150 if 12 <= major <= 14 else 0,
            # Stein changed the default to wait for the network before migrating.
            live_migration_wait_for_vif_plug=major >= 19,
            release=release,
        )

    @classmethod
    def from_ini_text(cls, text: str, release: Release | None = None) -> Settings:
        """The settings a nova.conf with this text gives under `release`.

        Reads only the options lmes knows, from their own sections; everything else in the file
        (hundreds of options, other sections, `%` signs) is ignored, as are options the release
        does not have, as oslo.config ignores unregistered ones. A repeated option keeps its
        last value. Raises ValueError naming the section and option of a bad value.
        """
        settings = cls.defaults(release)
        parser = configparser.ConfigParser(
            interpolation=None,
            strict=False,
            # oslo.config reads [DEFAULT] as an ordinary section, not as every section's fallback.
            default_section="\x00no default section",
            empty_lines_in_values=False,
        )
        try:
            parser.read_string(text, source="nova.conf")
        except configparser.Error as exc:
            first_line = str(exc).splitlines()[0]
            raise SettingsError(f"not a valid nova.conf: {first_line}") from exc
        found: dict[str, Any] = {}
        for spec in OPTIONS:
            if not spec.exists_in(settings.release) or not parser.has_section(spec.section):
                continue
            raw = parser[spec.section].get(spec.name)
            if raw is None:
                continue
            raw = _unquote(raw.strip())
            if raw == "":
                continue
            found[spec.name] = _parse_value(spec, raw)
        return dataclasses.replace(settings, **found)

    def with_overrides(self, **values: Any) -> Settings:
        """These settings with some options (or the release) replaced, checked again.

        Naming an option the release does not have is an error: Nova would not know it.
        """
        for name in values:
            if name == "release":
                continue
            spec = _OPTIONS_BY_NAME.get(name)
            if spec is None:
                raise SettingsError(f"unknown Nova option {name!r}")
        release = values.get("release", self.release)
        for name in values:
            spec = _OPTIONS_BY_NAME.get(name)
            if spec is not None and not spec.exists_in(release):
                raise SettingsError(f"{name} does not exist in Nova {release}")
        return dataclasses.replace(self, **values)

    def warnings(self) -> list[str]:
        """What a clamping release (Liberty to Ocata) silently changes in these settings."""
        return [
            below.message()
            for below in ramp_below_minimums(
                self.live_migration_downtime,
                self.live_migration_downtime_steps,
                self.live_migration_downtime_delay,
                self.release,
            )
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the release by name, every option by Nova's name."""
        values: dict[str, Any] = {"release": self.release.name}
        values.update({spec.name: getattr(self, spec.name) for spec in OPTIONS})
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Settings:
        """The settings `as_dict` gave; options missing from `values` take the release default."""
        unknown = set(values) - set(_OPTIONS_BY_NAME) - {"release"}
        if unknown:
            raise SettingsError(f"unknown Nova option(s): {', '.join(sorted(unknown))}")
        release = Release.parse(values["release"]) if "release" in values else None
        options = {name: value for name, value in values.items() if name != "release"}
        return dataclasses.replace(cls.defaults(release), **options)


def _check_type(spec: OptionSpec, value: Any) -> None:
    if spec.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SettingsError(f"{spec.name} must be an integer, got {value!r}")
    if spec.kind is bool and not isinstance(value, bool):
        raise SettingsError(f"{spec.name} must be true or false, got {value!r}")
    if spec.kind is str and not isinstance(value, str):
        raise SettingsError(f"{spec.name} must be a string, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise SettingsError(f"{spec.name} must be one of {', '.join(spec.choices)}, got {value!r}")


def _unquote(raw: str) -> str:
    """oslo.config drops one pair of matching quotes around a value."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _parse_value(spec: OptionSpec, raw: str) -> Any:
    where = f"[{spec.section}] {spec.name} = {raw!r}"
    if spec.kind is bool:
        word = raw.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise SettingsError(f"{where} is not a boolean (true/false, yes/no, on/off, 1/0)")
    if spec.kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{where} is not an integer") from None
    if spec.choices and raw not in spec.choices:
        raise SettingsError(f"{where} is not one of {', '.join(spec.choices)}")
    return raw
