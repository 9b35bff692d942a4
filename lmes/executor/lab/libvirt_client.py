"""The one place the lab imports libvirt-python: lazily, so lmes runs without it installed."""

from __future__ import annotations

from types import ModuleType

from lmes.errors import UserError


def libvirt_module() -> ModuleType:
    """The `libvirt` module with its default error printer silenced (errors arrive as exceptions).

    libvirt-python prints every error to stderr before raising it; the lab polls daemons that are
    still starting, so those lines would be noise.
    """
    try:
        import libvirt
    except ImportError:
        raise UserError(
            "libvirt-python is not installed; run: pip install libvirt-python"
        ) from None
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    return libvirt
