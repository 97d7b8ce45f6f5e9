"""The ``[uefi]`` table of a platform profile: the UEFI configuration, the variable SP and its variables.

```toml
[uefi]
configuration = "ffa-runtime"   # or "mainline" (U-Boot as merged) or "none" (no EFI boot)
live_state = "faithful"         # what the variable SP keeps across a live activation, or "naive"
variable_sp = "sp2"             # the LFA component that is the variable SP (activator "sp")
sp_abort_action = "destroy"     # what Hafnium does with an SP whose new image fails, or "restart"
max_variables = 35              # SMM_GATEWAY_MAX_UEFI_VARIABLES (Trusted Services FVP default-sp)
mm_buffer = 0x8_8100_0000       # the SP's mm-comm-buffer = U-Boot's CONFIG_FFA_SHARED_MM_BUF_ADDR
mm_buffer_size = 0x8000
mm_buffer_offset = 0            # CONFIG_FFA_SHARED_MM_BUF_OFFSET, sent in x3
sp_latency = 0.0                # seconds the SP spends on one MM request
secure_boot = false             # true: PK, KEK and db are provisioned, so U-Boot boots in user mode
esrt = ["bl32", "bl33"]         # the components the ESRT lists (default: those without an activator)
# rt_supported = 0x21F0         # override the RT properties mask

[[uefi.variable]]               # provisioned in the NV store at the first power-on of a fresh flash
name = "BootOrder"
u16 = [1, 0]                    # or data = "hex", text = "ascii", u8/u32/u64 = [...], or
                                # load_option = { description = "debian", path = "\\EFI\\debian\\shimaa64.efi" }
attributes = ["NV", "BS", "RT"] # the default; an int works too
# guid = "8be4df61-93ca-11d2-aa0d-00e098032b8c" (the default)
```
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from lfafs.uefi import EFI_GLOBAL_VARIABLE, NV_BS_RT, VarAttr

CONFIGURATIONS = ("ffa-runtime", "mainline", "none")
LIVE_STATE_POLICIES = ("faithful", "naive")
ABORT_ACTIONS = ("destroy", "restart")
FIELDS = ("configuration", "live_state", "variable_sp", "sp_abort_action", "max_variables", "max_variable_size",
          "mm_buffer", "mm_buffer_size", "mm_buffer_offset", "sp_latency", "secure_boot", "esrt", "rt_supported",
          "variable")
_ATTR_NAMES = {"NV": VarAttr.NON_VOLATILE, "BS": VarAttr.BOOTSERVICE_ACCESS, "RT": VarAttr.RUNTIME_ACCESS,
               "HR": VarAttr.HARDWARE_ERROR_RECORD, "AW": VarAttr.AUTHENTICATED_WRITE_ACCESS,
               "AT": VarAttr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS, "AP": VarAttr.APPEND_WRITE,
               **{a.name: a for a in VarAttr}}
_DATA_KEYS = ("data", "text", "u8", "u16", "u32", "u64", "load_option")
LOAD_OPTION_ACTIVE = 0x1


class UefiSpecError(ValueError):
    """A bad ``[uefi]`` table: ``field`` (below ``uefi.``) and what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"uefi.{field}: {problem}")
        self.field = field
        self.problem = problem


@attrs.frozen
class VariableSpec:
    """One provisioned variable."""

    name: str
    guid: uuid.UUID
    attributes: int
    data: bytes


@attrs.frozen
class UefiSpec:
    configuration: str = "ffa-runtime"
    live_state: str = "faithful"
    variable_sp: str = "sp2"
    sp_abort_action: str = "destroy"
    max_variables: int = 35
    max_variable_size: int = 4096
    mm_buffer: int = 0x8_8100_0000
    mm_buffer_size: int = 0x8000
    mm_buffer_offset: int = 0
    sp_latency: float = 0.0
    secure_boot: bool = False
    esrt: tuple[str, ...] | None = None  # None: the components without an activator
    rt_supported: int | None = None  # None: the configuration's mask
    variables: tuple[VariableSpec, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.configuration != "none"


def _device_path_file(path: str) -> bytes:
    """A Media File Path node (type 4, subtype 4) and the End Entire node (0x7F/0xFF)."""
    raw = path.encode("utf-16-le") + b"\0\0"
    return struct.pack("<BBH", 4, 4, 4 + len(raw)) + raw + struct.pack("<BBH", 0x7F, 0xFF, 4)


def load_option(description: str, path: str, attributes: int = LOAD_OPTION_ACTIVE) -> bytes:
    """An EFI_LOAD_OPTION: Attributes, FilePathListLength, Description, FilePathList."""
    fpl = _device_path_file(path)
    return struct.pack("<IH", attributes, len(fpl)) + description.encode("utf-16-le") + b"\0\0" + fpl


def default_variables() -> tuple[VariableSpec, ...]:
    """What a fresh FVP flash holds: two boot entries, their order and a timeout."""
    g = EFI_GLOBAL_VARIABLE
    return (
        VariableSpec("Boot0000", g, NV_BS_RT, load_option("UEFI Shell", "\\EFI\\BOOT\\BOOTAA64.EFI")),
        VariableSpec("Boot0001", g, NV_BS_RT, load_option("debian", "\\EFI\\debian\\shimaa64.efi")),
        VariableSpec("BootOrder", g, NV_BS_RT, struct.pack("<2H", 1, 0)),
        VariableSpec("Timeout", g, NV_BS_RT, struct.pack("<H", 5)),
    )


def _int(raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UefiSpecError(key, f"expected an integer in [{lo:#x}, {hi:#x}], got {value!r}")
    return value


def _choice(raw: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise UefiSpecError(key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _attributes(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        out = 0
        for v in value:
            if v.upper() not in _ATTR_NAMES:
                raise UefiSpecError(where, f"unknown attribute {v!r} (NV, BS, RT, AT, AP, or EFI_VARIABLE_* names)")
            out |= _ATTR_NAMES[v.upper()]
        return out
    raise UefiSpecError(where, f"expected an integer below 0x100 or a list of names, got {value!r}")


def _data(raw: Mapping[str, Any], where: str) -> bytes:
    given = [k for k in _DATA_KEYS if k in raw]
    if len(given) != 1:
        raise UefiSpecError(where, f"give exactly one of {', '.join(_DATA_KEYS)}")
    key = given[0]
    value = raw[key]
    try:
        if key == "data":
            return bytes.fromhex(value)
        if key == "text":
            return value.encode("ascii")
        if key == "load_option":
            if not isinstance(value, Mapping) or set(value) - {"description", "path", "attributes"}:
                raise ValueError("expected { description = ..., path = ... }")
            return load_option(str(value.get("description", "")), str(value.get("path", "")),
                               int(value.get("attributes", LOAD_OPTION_ACTIVE)))
        fmt = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q"}[key]
        if not isinstance(value, list):
            raise ValueError("expected a list of integers")
        return struct.pack(f"<{len(value)}{fmt}", *value)
    except (ValueError, TypeError, AttributeError, struct.error, UnicodeEncodeError) as e:
        raise UefiSpecError(f"{where}.{key}", str(e)) from None


def _variable(raw: Any, i: int) -> VariableSpec:
    where = f"variable[{i}]"
    if not isinstance(raw, Mapping):
        raise UefiSpecError(where, "expected a table")
    for key in raw:
        if key not in ("name", "guid", "attributes", *_DATA_KEYS):
            raise UefiSpecError(f"{where}.{key}", "unknown field")
    name = raw.get("name")
    if not isinstance(name, str) or not name or len(name) > 63 or any(ord(c) > 0xFFFF or c == "\0" for c in name):
        raise UefiSpecError(f"{where}.name", f"expected 1-63 UCS-2 characters, got {name!r}")
    try:
        guid = uuid.UUID(str(raw.get("guid", EFI_GLOBAL_VARIABLE)))
    except ValueError as e:
        raise UefiSpecError(f"{where}.guid", str(e)) from None
    attributes = _attributes(raw.get("attributes", int(NV_BS_RT)), f"{where}.attributes")
    if not attributes & VarAttr.NON_VOLATILE:
        raise UefiSpecError(f"{where}.attributes", "a provisioned variable must be non-volatile (NV)")
    data = _data(raw, where)
    if not data:
        raise UefiSpecError(where, "a variable needs at least one byte of data")
    return VariableSpec(name=name, guid=guid, attributes=attributes, data=data)


def uefi_spec(raw: Any, components: Mapping[str, str] | None = None) -> UefiSpec:
    """A UefiSpec from a profile's ``[uefi]`` table (empty: the defaults); UefiSpecError names the field.

    ``components`` (name -> activator kind) checks the names the table uses.
    """
    spec = _uefi_spec(raw)
    if components is not None:
        if spec.enabled and components.get(spec.variable_sp) != "sp":
            raise UefiSpecError("variable_sp", f"{spec.variable_sp!r} is not a component with the sp activator")
        for name in spec.esrt or ():
            if name not in components:
                raise UefiSpecError("esrt", f"{name!r} is not a component of this profile")
    return spec


def _uefi_spec(raw: Any) -> UefiSpec:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise UefiSpecError("", "expected a table")
    for key in raw:
        if key not in FIELDS:
            raise UefiSpecError(key, f"unknown field (known: {', '.join(FIELDS)})")
    latency = raw.get("sp_latency", 0.0)
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 3600:
        raise UefiSpecError("sp_latency", f"expected seconds in [0, 3600], got {latency!r}")
    secure_boot = raw.get("secure_boot", False)
    if not isinstance(secure_boot, bool):
        raise UefiSpecError("secure_boot", f"expected true or false, got {secure_boot!r}")
    esrt = raw.get("esrt")
    if esrt is not None and (not isinstance(esrt, list) or not all(isinstance(e, str) for e in esrt)):
        raise UefiSpecError("esrt", f"expected a list of component names, got {esrt!r}")
    rt = raw.get("rt_supported")
    if rt is not None:
        rt = _int(raw, "rt_supported", 0, 0, 0xFFFF)
    variable_sp = raw.get("variable_sp", "sp2")
    if not isinstance(variable_sp, str):
        raise UefiSpecError("variable_sp", f"expected a component name, got {variable_sp!r}")
    size = _int(raw, "mm_buffer_size", 0x8000, 0x1000, 0x10_0000)
    base = _int(raw, "mm_buffer", 0x8_8100_0000, 0, (1 << 48) - 1)
    if size % 0x1000 or base % 0x1000:
        raise UefiSpecError("mm_buffer", "the buffer's address and size must be whole 4 KB pages")
    raw_vars = raw.get("variable")
    if raw_vars is not None and not isinstance(raw_vars, list):
        raise UefiSpecError("variable", "expected a list of [[uefi.variable]] tables")
    variables = default_variables() if raw_vars is None else tuple(_variable(v, i) for i, v in enumerate(raw_vars))
    seen = set()
    for v in variables:
        if (v.name, v.guid) in seen:
            raise UefiSpecError("variable", f"{v.name}-{v.guid} is declared twice")
        seen.add((v.name, v.guid))
    return UefiSpec(
        configuration=_choice(raw, "configuration", CONFIGURATIONS, "ffa-runtime"),
        live_state=_choice(raw, "live_state", LIVE_STATE_POLICIES, "faithful"),
        variable_sp=variable_sp,
        sp_abort_action=_choice(raw, "sp_abort_action", ABORT_ACTIONS, "destroy"),
        max_variables=_int(raw, "max_variables", 35, 1, 1024),
        max_variable_size=_int(raw, "max_variable_size", 4096, 64, 0x10_0000),
        mm_buffer=base,
        mm_buffer_size=size,
        mm_buffer_offset=_int(raw, "mm_buffer_offset", 0, 0, size - 1),
        sp_latency=float(latency),
        secure_boot=secure_boot,
        esrt=tuple(esrt) if esrt is not None else None,
        rt_supported=rt,
        variables=variables,
    )
