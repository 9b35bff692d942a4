"""Reading hosts files: what the executor accepts, and one clear line for every mistake."""

from __future__ import annotations

import re

import pytest

from lmes.errors import UserError
from lmes.executor.lab import Capacity, HostConfig, load_hosts

TWO_HOSTS = """
[[hosts]]
name = "compute-1"
uri = "qemu+ssh://compute-1/system"
migration_address = "10.0.0.1"
capacity = { memory_mb = 65536, vcpus = 32, disk_gb = 500 }

[[hosts]]
name = "compute-2"
uri = "qemu+tcp://compute-2/system"
p2p_uri = "qemu+tls://compute-2/system"
migration_uri = "rdma://10.0.1.2"
[hosts.capacity]
memory_mb = 32768
vcpus = 16
disk_gb = 250
"""


def test_a_cloud_hosts_file_gives_one_config_per_host(tmp_path):
    path = tmp_path / "hosts.toml"
    path.write_text(TWO_HOSTS)
    first, second = load_hosts(path)
    assert first == HostConfig(
        name="compute-1",
        uri="qemu+ssh://compute-1/system",
        p2p_uri="qemu+ssh://compute-1/system",
        migration_address="10.0.0.1",
        migration_uri="tcp://10.0.0.1",
        capacity=Capacity(memory_mb=65536, vcpus=32, disk_gb=500),
    )
    assert second.p2p_uri == "qemu+tls://compute-2/system"
    assert second.migration_address is None
    assert second.migration_uri == "rdma://10.0.1.2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[hosts]\n", "not valid TOML"),
        ("", "no hosts"),
        ("[[host]]\nname = 'a'\n", "unknown top-level key 'host'"),
        ("[[hosts]]\nuri = 'qemu:///system'\n", "hosts[1]: missing 'name'"),
        ("[[hosts]]\nname = 'a'\n", "host 'a': missing 'uri'"),
        ("[[hosts]]\nname = 'a'\nuri = 'compute-1'\n", "uri 'compute-1' is not a libvirt URI"),
        ("[[hosts]]\nname = 'a'\nuri = 'qemu:///system'\n", "missing capacity table"),
        (
            "[[hosts]]\nname = 'a'\nuri = 'qemu:///system'\n"
            "capacity = { memory_mb = 0, vcpus = 1, disk_gb = 1 }\n",
            "capacity.memory_mb must be a positive integer",
        ),
        (
            "[[hosts]]\nname = 'a'\nuri = 'qemu:///system'\nmigration_adress = 'x'\n",
            "unknown key 'migration_adress'",
        ),
        (
            "[[hosts]]\nname = 'a'\nuri = 'qemu:///system'\n"
            "capacity = { memory_mb = 1, vcpus = 1, disk_gb = 1 }\n" * 2,
            "host name 'a' appears twice",
        ),
    ],
)
def test_a_broken_hosts_file_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)) as refused:
        load_hosts(path)
    assert "\n" not in str(refused.value)
    assert str(path) in str(refused.value)


def test_a_missing_hosts_file_is_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_hosts(tmp_path / "nowhere.toml")
