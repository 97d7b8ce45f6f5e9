"""lfafs: an emulated Arm platform with Live Firmware Activation, served as /sys/firmware over FUSE.

The layers, lowest first; each imports only from the layers below it
(docs/architecture.md; tests/test_architecture.py checks it)::

    0  lfafs.smccc          the vocabulary of the SMC boundary: ids, statuses, flags, Version
    1  lfafs.xlat*          the native core (native/*.c through cffi): stage-1 tables, VA allocator
    2  lfafs.platform       the emulated machine: CPUs, DRAM, the EL3 LFA agent, activators, the RMM
    3  lfafs.driver         the Linux lfa_fw.c model; reaches the platform only through SMCs
    4  lfafs.fs             FUSE operations with sysfs semantics over the driver
    5  lfafs.service        daemon, control socket, CLI, ``lfafs run``, state directory, fixtures, bench

What users import: ``lfafs.platform.Platform``, ``lfafs.xlat``, the
``lfafs`` command and the pytest plugin (``lfafs.testing``).
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("lfafs")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
