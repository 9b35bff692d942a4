"""Reading a nova.conf file from disk into `Settings`.

The domain parses the text; this adapter owns the file system and turns every way a file can be
unreadable or invalid into one clear `UserError`.
"""

from __future__ import annotations

from pathlib import Path

from lmes.domain.releases import Release
from lmes.domain.settings import Settings
from lmes.errors import UserError


def read_nova_conf(path: Path | str, release: Release | None = None) -> Settings:
    """The settings the nova.conf at `path` gives under `release` (the newest by default)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"cannot read nova.conf {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read nova.conf {path}: {exc.strerror or exc}") from None
    try:
        return Settings.from_ini_text(text, release)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
