"""Nova releases, by name and major version number.

Nova's live-migration policy changed shape from release to release (the downtime ramp went from
exponential to linear in Ocata 15, the progress timeout left in Stein 19, ...), so every policy
decision takes the release it imitates. A release is known by its series name (``newton``,
``2024.1``), its code name where it has one (``caracal``) or its major version (``14``).
"""

from __future__ import annotations

from dataclasses import dataclass

# (name, major, code name or "") in release order; the major is the first part of the tag
# (Newton is 14.0.0). From 2023.1 on the series are named by year and carry a code name too.
_SERIES: tuple[tuple[str, int, str], ...] = (
    ("Essex", 5, ""),
    ("Folsom", 6, ""),
    ("Grizzly", 7, ""),
    ("Havana", 8, ""),
    ("Icehouse", 9, ""),
    ("Juno", 10, ""),
    ("Kilo", 11, ""),
    ("Liberty", 12, ""),
    ("Mitaka", 13, ""),
    ("Newton", 14, ""),
    ("Ocata", 15, ""),
    ("Pike", 16, ""),
    ("Queens", 17, ""),
    ("Rocky", 18, ""),
    ("Stein", 19, ""),
    ("Train", 20, ""),
    ("Ussuri", 21, ""),
    ("Victoria", 22, ""),
    ("Wallaby", 23, ""),
    ("Xena", 24, ""),
    ("Yoga", 25, ""),
    ("Zed", 26, ""),
    ("2023.1", 27, "Antelope"),
    ("2023.2", 28, "Bobcat"),
    ("2024.1", 29, "Caracal"),
    ("2024.2", 30, "Dalmatian"),
    ("2025.1", 31, "Epoxy"),
    ("2025.2", 32, "Flamingo"),
    ("2026.1", 33, "Gazpacho"),
    # The development branch: everything merged after the newest release.
    ("master", 34, ""),
)


@dataclass(frozen=True, order=True)
class Release:
    """One Nova release series; releases compare by their major version."""

    major: int
    name: str

    def __str__(self) -> str:
        return f"{self.name} ({self.major})"

    @classmethod
    def parse(cls, text: str | int) -> Release:
        """The release named ``text``: a series name, a code name or a major version.

        Raises ValueError naming the accepted forms when ``text`` is none of them.
        """
        key = str(text).strip().lower()
        for name, major, code_name in _SERIES:
            if key and key in (name.lower(), str(major), code_name.lower()):
                return cls(major=major, name=name)
        first, last = _SERIES[0], _SERIES[-2]
        raise ValueError(
            f"unknown Nova release {str(text)!r}: give a series name ({first[0].lower()} … "
            f"{last[0]}, or master) or a major version ({first[1]} … {_SERIES[-1][1]})"
        )

    @classmethod
    def newest(cls) -> Release:
        """The newest published release, the default whenever none is named."""
        name, major, _ = _SERIES[-2]
        return cls(major=major, name=name)


def all_releases() -> list[Release]:
    """Every known release, oldest first, the development branch last."""
    return [Release(major=major, name=name) for name, major, _ in _SERIES]


# The releases where Nova's live-migration rules changed, for callers that name an era.
LIBERTY = Release.parse("liberty")
NEWTON = Release.parse("newton")
OCATA = Release.parse("ocata")
PIKE = Release.parse("pike")
ROCKY = Release.parse("rocky")
STEIN = Release.parse("stein")
