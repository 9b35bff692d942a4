"""Real libvirt live migrations, run the way OpenStack Nova runs them, every step recorded.

`service.Executor` is the entry point (what the `lmes` commands call); `workflow` holds Nova's
steps, `monitor` the job monitor, `recovery` the reconciliation after an executor died,
`checks` and `scheduler` the conductor's decisions, `hooks` the network and volume plug-ins,
and `hypervisor` the libvirt adapter behind a small protocol. `lab` runs libvirt hosts on one
machine for trying it all out and for the tests.
"""
