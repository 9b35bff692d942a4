"""lmes: VM live migrations as event streams — executed with libvirt, replayed from nova logs,
simulated with SimPy — in one store, read by one analytics layer."""

__version__ = "0.1.0"
