"""A model of the Linux LFA driver, drivers/firmware/smccc/lfa_fw.c (layer 3).

It talks to firmware only through an SMC conduit, as the real driver does,
and never imports the platform.
"""

from lfafs.driver.abi import ABIS, Abi
from lfafs.driver.klog import KernelLog, Uevent
from lfafs.driver.lfa import ATTRIBUTES, NOTIFICATION_SOURCES, Conduit, LfaDriver

__all__ = ["ABIS", "ATTRIBUTES", "NOTIFICATION_SOURCES", "Abi", "Conduit", "KernelLog", "LfaDriver", "Uevent"]
