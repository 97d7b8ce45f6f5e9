"""The UEFI side of one boot: the SPMC with the variable SP, U-Boot, and the runtime services the OS calls.

Built by the machine at every power-on (:meth:`UefiStack.power_on`): the
variable SP boots from the NV store (the secure flash, kept across power
cycles like the component flash), U-Boot probes FF-A, sets its boot-time
variables and calls ExitBootServices, all through the SMC path, and the
configuration tables the kernel will read (the ESRT, the RT properties
table) are laid out as bytes.

:class:`UefiRuntime` is what the kernel model (lfafs/driver/efi_runtime.py)
is handed: GetVariable, GetNextVariableName, SetVariable and
QueryVariableInfo, each run as U-Boot's runtime code on a CPU the machine
pins for the call, as Linux's efi_rts_wq runs one call on one CPU with
preemption disabled.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from lfafs.platform import variable_auth
from lfafs.platform.ffa import PAGE, NsMemory
from lfafs.platform.mm_communicate import SMM_VARIABLE_GUID
from lfafs.platform.plat_lfa import Component, PlatformError
from lfafs.platform.profile import Profile
from lfafs.platform.smm_gateway import CommBuffer, SmmGateway
from lfafs.platform.spmc import Partition, Spmc
from lfafs.platform.uboot import Firmware, UBoot, UBootConfig, rt_supported_default, run_sync
from lfafs.platform.variable_store import INDEX_STORAGE_UID, SecureStorage, UefiVariableStore
from lfafs.smccc import ActivatorKind
from lfafs.uefi import (
    EFI_GLOBAL_VARIABLE,
    EFI_IMAGE_SECURITY_DATABASE,
    EFI_RT_PROPERTIES_TABLE,
    EFI_SYSTEM_RESOURCE_TABLE,
    NV_BS_RT,
    SMBIOS3_TABLE,
    EfiStatus,
    EsrtEntry,
    EsrtFwType,
    SystemTable,
    VarAttr,
    guid_bytes,
    pack_esrt,
    pack_rt_properties,
    ucs2,
)

FIRST_SP_ID = 0x8001  # TF-A plat_arm_lfa_components.h: FFA_ID_SP1, FFA_ID_SP2 in table order
FLASH_FORMAT = "lfafs-secure-flash-1"
SMBIOS3_ADDRESS = 0xF_BFE0_0000  # where the model's U-Boot says its SMBIOS 3 table is (NS DRAM2)
# The certificates of a profile with secure_boot = true (stand-ins: see variable_auth.py)
PK_CERT = b"lfafs platform key certificate"
KEK_CERT = b"lfafs key exchange key certificate"
DB_CERT = b"lfafs signature database certificate"
AUTH_NV = NV_BS_RT | VarAttr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS


def fw_version(version: tuple[int, int]) -> int:
    """An LFA version (major, minor) as a 32-bit ESRT fw_version: major in [31:16], minor in [15:0]."""
    major, minor = version
    return ((major & 0xFFFF) << 16) | (minor & 0xFFFF)


def flash_to_state(flash: SecureStorage) -> dict:
    return {"format": FLASH_FORMAT, "objects": {str(uid): data.hex() for uid, data in sorted(flash.objects.items())}}


def flash_from_state(state: dict) -> dict[int, bytes]:
    """The objects of a saved secure flash; PlatformError naming what is wrong."""
    if not isinstance(state, dict) or state.get("format") != FLASH_FORMAT or not isinstance(state.get("objects"), dict):
        raise PlatformError(f"the saved secure flash is not in the {FLASH_FORMAT} format: use another state directory")
    try:
        return {int(uid): bytes.fromhex(data) for uid, data in state["objects"].items()}
    except (ValueError, TypeError) as e:
        raise PlatformError(f"the saved secure flash is damaged: {e}") from None


def provision(flash: SecureStorage, profile: Profile) -> None:
    """A fresh secure flash gets the profile's variables (and keys for secure boot), as a factory image."""
    spec = profile.uefi
    if flash.get(INDEX_STORAGE_UID) is not None or not spec.enabled:
        return
    store = UefiVariableStore(spec.max_variables, flash, SecureStorage(), max_variable_size=spec.max_variable_size)
    wanted = [(v.guid, v.name, int(v.attributes), v.data) for v in spec.variables]
    if spec.secure_boot:
        wanted += [(EFI_GLOBAL_VARIABLE, "PK", AUTH_NV, variable_auth.signature_list([PK_CERT])),
                   (EFI_GLOBAL_VARIABLE, "KEK", AUTH_NV, variable_auth.signature_list([KEK_CERT])),
                   (EFI_IMAGE_SECURITY_DATABASE, "db", AUTH_NV, variable_auth.signature_list([DB_CERT]))]
    for guid, name, attributes, data in wanted:
        if store.provision(guid_bytes(guid), ucs2(name), int(attributes), data) != EfiStatus.SUCCESS:
            raise PlatformError(f"the profile declares more variables than the SP holds "
                                f"(uefi.max_variables = {spec.max_variables})")


class UefiRuntime:
    """EFI runtime services as the OS calls them (layer 3's RuntimeServices)."""

    def __init__(self, uboot: UBoot, call: Callable[[Firmware], Awaitable]) -> None:
        self._uboot = uboot
        self._call = call
        self.supported = uboot.cfg.rt_supported

    async def get_variable(self, name: str, vendor: uuid.UUID, *, attributes: bool, data_size: int,
                           data: bool = True) -> tuple[int, int | None, int, bytes | None]:
        return await self._call(self._uboot.rt_get_variable(name, vendor, attributes=attributes, data_size=data_size,
                                                            data=data))

    async def get_next_variable_name(self, name_size: int, name: str, vendor: uuid.UUID
                                     ) -> tuple[int, int, str, uuid.UUID]:
        return await self._call(self._uboot.rt_get_next_variable_name(name_size, name, vendor))

    async def set_variable(self, name: str, vendor: uuid.UUID, attributes: int, data: bytes) -> int:
        return await self._call(self._uboot.rt_set_variable(name, vendor, attributes, data))

    async def query_variable_info(self, attributes: int) -> tuple[int, tuple[int, int, int] | None]:
        return await self._call(self._uboot.rt_query_variable_info(attributes))


class UefiStack:
    """The SPMC, the variable SP and U-Boot of one boot."""

    def __init__(self, profile: Profile, flash: SecureStorage, components: list[Component],
                 boot_smc: Callable[[list[int]], list[int]], runtime_call: Callable[[Firmware], Awaitable]) -> None:
        spec = profile.uefi
        self.spec = spec
        self.log: list[str] = []
        self.memory = NsMemory(spec.mm_buffer, spec.mm_buffer_size + 2 * PAGE)
        provision(flash, profile)
        sp_specs = [c for c in profile.components if c.activator == ActivatorKind.SP]
        sp_spec = next(c for c in sp_specs if c.name == spec.variable_sp)
        self.sp_id = FIRST_SP_ID + sp_specs.index(sp_spec)
        self.sp_component_guid = sp_spec.guid
        current = next((c for c in components if c.spec.guid == sp_spec.guid), None)
        version = tuple(current.version) if current is not None else tuple(sp_spec.version)
        self.sp = SmmGateway(comm=CommBuffer(self.memory, spec.mm_buffer, spec.mm_buffer_size), nv=flash,
                             max_variables=spec.max_variables, policy=spec.live_state, version=version,
                             max_variable_size=spec.max_variable_size)
        self.partition = Partition(id=self.sp_id, protocol_uuid=SMM_VARIABLE_GUID, image_uuid=sp_spec.guid,
                                   sp=self.sp, latency=spec.sp_latency, abort_action=spec.sp_abort_action)
        self.spmc = Spmc(self.memory, [self.partition])
        rt = spec.rt_supported if spec.rt_supported is not None else rt_supported_default(spec.configuration)
        top = spec.mm_buffer + spec.mm_buffer_size
        self.uboot = UBoot(UBootConfig(configuration=spec.configuration, shared_buf=spec.mm_buffer,
                                       shared_buf_size=spec.mm_buffer_size, shared_buf_offset=spec.mm_buffer_offset,
                                       tx=top, rx=top + PAGE, rt_supported=rt), self.memory, log=self.log.append)
        self._boot_smc = boot_smc
        self.boot_status: int | None = None
        self.system_table = SystemTable(config_tables={
            EFI_SYSTEM_RESOURCE_TABLE: pack_esrt(self._esrt(profile, components)),
            EFI_RT_PROPERTIES_TABLE: pack_rt_properties(rt),
            SMBIOS3_TABLE: SMBIOS3_ADDRESS.to_bytes(8, "little"),
        })
        self.runtime = UefiRuntime(self.uboot, runtime_call)

    def boot(self) -> None:
        """U-Boot's efi_init_obj_list() and, when the OS loader is done, ExitBootServices()."""
        self.boot_status = run_sync(self.uboot.boot(), self._boot_smc)
        run_sync(self.uboot.exit_boot_services(), self._boot_smc)

    @staticmethod
    def _esrt(profile: Profile, components: list[Component]) -> list[EsrtEntry]:
        """U-Boot's ESRT from its FMP image list: the components a capsule updates (docs/efi.md, "ESRT")."""
        names = profile.uefi.esrt
        if names is None:
            names = tuple(c.name for c in components if c.kind == "none")
        out = []
        for c in components:
            if c.name in names:
                out.append(EsrtEntry(fw_class=c.spec.guid, fw_type=EsrtFwType.SYSTEM_FIRMWARE,
                                     fw_version=fw_version(c.version), lowest_supported_fw_version=0,
                                     capsule_flags=0, last_attempt_version=0, last_attempt_status=0))
        return out
