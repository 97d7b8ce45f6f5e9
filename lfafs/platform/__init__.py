"""The emulated Arm platform (layer 2): DRAM, CPUs, the EL3 LFA agent, components and the RMM.

Public surface::

    platform = Platform.from_profile()              # the default, fvp-den0147; or "fvp", a TOML path; cpus=N
    regs = await platform.smc(Fid.LFA_GET_INFO, 0, cpu=0)   # x0..x5, unsigned
    platform.stage("rmm", version=(0, 10))          # a new image, pending activation
"""

from lfafs.platform.faults import STAGES, FaultError
from lfafs.platform.machine import Platform, PlatformError, Regs
from lfafs.platform.profile import (
    DEFAULT_PROFILE,
    ComponentSpec,
    ProfileError,
    SpecError,
    component_spec,
    embedded_names,
    load_profile,
)

__all__ = ["DEFAULT_PROFILE", "STAGES", "ComponentSpec", "FaultError", "Platform", "PlatformError", "ProfileError",
           "Regs", "SpecError", "component_spec", "embedded_names", "load_profile"]
