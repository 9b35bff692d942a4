"""The pure domain: the Migration aggregate, its events and statuses, Nova's policy math and
settings. Nothing here touches libvirt, SimPy, pandas or the file system."""
