"""Commands an operator types during an incident start fast: they import only what they use."""

import subprocess
import sys

import pytest

HEAVY = ("pandas", "matplotlib", "simpy", "libvirt")


@pytest.mark.parametrize(
    "command", ["abort", "force-complete", "policy", "lab", "migrate", "recover", "hosts"]
)
def test_parsing_a_control_command_imports_no_analytics_or_simulation(command):
    check = (
        f"import sys; from lmes.cli import build_parser; build_parser({command!r}); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"lmes {command} imports {out.stdout.strip()}"


def test_every_command_is_registered_by_its_module():
    from lmes.cli import COMMANDS, build_parser

    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)
    assert registered == set(COMMANDS)
