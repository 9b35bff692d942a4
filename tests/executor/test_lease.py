"""A migration's lease: held while its executor lives, free the moment it dies."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from lmes.executor.lease import lease_held, try_lease

pytestmark = pytest.mark.usefixtures("lmes_home")


def test_a_second_holder_is_refused_until_the_first_releases():
    migration_id = uuid.uuid4()
    lease = try_lease(migration_id)
    assert lease is not None and lease_held(migration_id)
    assert try_lease(migration_id) is None
    lease.release()
    assert not lease_held(migration_id)


def test_a_child_process_keeps_the_lease_handed_to_it_and_loses_it_when_killed():
    migration_id = uuid.uuid4()
    lease = try_lease(migration_id)
    descriptor = lease.inheritable()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        pass_fds=(descriptor,),
    )
    try:
        lease.hand_off()
        assert lease_held(migration_id)
        child.kill()
        child.wait()
        assert not lease_held(migration_id)
    finally:
        if child.poll() is None:
            child.kill()
    assert os.path.exists(lease.path)
