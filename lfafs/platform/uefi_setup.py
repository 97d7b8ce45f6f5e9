"""The platform owner's view of the UEFI variables: a firmware setup menu, and faults on the variable SP.

A setup menu (or a BMC editing "BIOS settings") runs in the firmware,
not through the OS: it reads and writes the variable SP's store with
boot-time visibility (every BS variable, not only the RT ones the OS sees
after ExitBootServices) and the store's own SetVariable rules (attributes,
sizes, authenticated variables, a full index). What it changes is in the NV
store at once (so saved with the flash); the running kernel reads the new
contents of a file it already lists, and lists a new name after its next
boot (efivarfs's listing is a mount-time snapshot: ``lfafs ctl reset``).

The faults act where the real failures arise: the SPMC answers a direct
request with FFA_ERROR (BUSY, ...), the SP answers with an MM return code,
the SP's Protected Storage refuses writes (PSA_ERROR_INSUFFICIENT_STORAGE),
or the SP fails and its abort action leaves it destroyed or aborted. A
platform reset boots a new SP and clears all but the full storage, which is
a property of the flash.
"""

from __future__ import annotations

import uuid

import attrs

from lfafs.platform.ffa import FfaError
from lfafs.platform.mm_communicate import MmReturn
from lfafs.platform.plat_lfa import PlatformError
from lfafs.platform.spmc import Partition, RequestFault, SpState
from lfafs.platform.variable_store import AccessVariable, UefiVariableStore
from lfafs.uefi import EFI_GLOBAL_VARIABLE, NV_BS_RT, EfiStatus, from_ucs2, guid_bytes, guid_from_bytes, ucs2

FILL_VENDOR = uuid.UUID("6c666166-7300-4669-8c6c-000000000001")  # the vendor GUID of ``fill``'s variables
FAULTS = ("busy", "ffa-error", "mm-error", "storage-full", "sp-failure")


@attrs.frozen
class Variable:
    """One variable as the store holds it."""

    name: str
    guid: uuid.UUID
    attributes: int
    data: bytes


ATTRIBUTE_NAMES = {"nv": 0x1, "bs": 0x2, "rt": 0x4, "hr": 0x8, "aw": 0x10, "at": 0x20, "append": 0x40}


def parse_guid(text: str | None) -> uuid.UUID:
    """A vendor GUID; None is EFI_GLOBAL_VARIABLE."""
    if text is None:
        return EFI_GLOBAL_VARIABLE
    try:
        return uuid.UUID(text)
    except ValueError:
        raise PlatformError(f"{text!r} is not a GUID (8-4-4-4-12 hex digits)") from None


def parse_attributes(text: str | None) -> int:
    """"nv,bs,rt" (ATTRIBUTE_NAMES) or a number such as 0x7; None is NV|BS|RT."""
    if text is None:
        return int(NV_BS_RT)
    try:
        return int(text, 0)
    except ValueError:
        pass
    out = 0
    for word in filter(None, (w.strip().lower() for w in text.split(","))):
        if word not in ATTRIBUTE_NAMES:
            raise PlatformError(f"attributes: {word!r} is not one of {', '.join(ATTRIBUTE_NAMES)} "
                                "(or give a number, e.g. 0x7)")
        out |= ATTRIBUTE_NAMES[word]
    return out


def parse_data(text: str) -> bytes:
    """Hex bytes: "0100", "01 00" or "01:00"."""
    try:
        return bytes.fromhex(text.replace(":", " "))
    except ValueError:
        raise PlatformError(f"data must be hex bytes (e.g. 0100 or 01:00), not {text!r}") from None


def _partition(platform) -> Partition:
    stack = getattr(platform, "uefi", None)
    if stack is None:
        raise PlatformError("this platform boots without UEFI ([uefi] configuration = \"none\"): no variables")
    return stack.partition


def _store(platform) -> UefiVariableStore:
    p = _partition(platform)
    if p.state != SpState.WAITING:
        raise PlatformError(f"the variable SP is {p.state.value}: it cannot serve the variables now "
                            "(lfafs ctl reset boots it again)")
    return p.sp.store


def variables(platform) -> list[Variable]:
    """Every variable in the store, in its index's slot order (GetNextVariableName's order)."""
    store = _store(platform)
    out = []
    for e in store.index.slots:
        if e is None or not e.is_variable_set:
            continue
        data = store._backend(e.attributes).get(e.uid)
        if data is not None:
            out.append(Variable(from_ucs2(e.name), guid_from_bytes(e.guid), e.attributes, data))
    return out


def get(platform, name: str, guid: uuid.UUID) -> Variable | None:
    return next((v for v in variables(platform) if v.name == name and v.guid == guid), None)


def set_variable(platform, name: str, guid: uuid.UUID, attributes: int = int(NV_BS_RT), data: bytes = b"") -> None:
    """SetVariable as the firmware makes it before ExitBootServices; PlatformError naming the refusal.

    Empty ``data`` (without APPEND_WRITE) deletes, as SetVariable does.
    """
    store = _store(platform)
    raw = ucs2(name)
    var = AccessVariable(guid=guid_bytes(guid), data_size=len(data), name_size=len(raw), attributes=attributes,
                         name=raw, data=data)
    was_boot_service = store.is_boot_service
    store.is_boot_service = True  # the setup menu runs at boot time
    try:
        status = store.set_variable(var)
    finally:
        store.is_boot_service = was_boot_service
    if status != EfiStatus.SUCCESS:
        raise PlatformError(f"SetVariable({name}-{guid}, attributes {attributes:#x}, {len(data)} bytes): "
                            f"{EfiStatus(status).name}")


def delete(platform, name: str, guid: uuid.UUID) -> None:
    v = get(platform, name, guid)
    if v is None:
        raise PlatformError(f"no variable {name}-{guid}")
    set_variable(platform, name, guid, v.attributes & ~0x40, b"")


def fill(platform, size: int = 1024, guid: uuid.UUID = FILL_VENDOR) -> int:
    """NV variables ``LfafsFillNNNN`` of ``size`` bytes until the store refuses one; how many were made."""
    if not 1 <= size <= 0xFFFF:
        raise PlatformError(f"size must be 1..65535 bytes, not {size}")
    made = 0
    while True:
        try:
            set_variable(platform, f"LfafsFill{made:04X}", guid, int(NV_BS_RT), bytes([made & 0xFF]) * size)
        except PlatformError:
            if made == 0:
                raise
            return made
        made += 1


def inject(platform, kind: str, *, count: int | None = None, ffa_error: str = "BUSY", mm_return: str = "NO_MEMORY"
           ) -> str:
    """Arm a fault on the variable SP (FAULTS); a sentence saying what it does."""
    p = _partition(platform)
    if count is not None and count < 1:
        raise PlatformError(f"a fault's count must be at least 1, got {count} (leave it out for a fault that stays)")
    if kind in ("busy", "ffa-error"):
        try:
            code = FfaError.BUSY if kind == "busy" else FfaError[ffa_error.upper()]
        except KeyError:
            raise PlatformError(f"{ffa_error!r} is not an FF-A error; one of "
                                f"{', '.join(e.name for e in FfaError)}") from None
        p.fault = RequestFault(ffa_error=code, remaining=count)
        return f"direct requests to SP {p.id:#06x} answered FFA_ERROR {code.name}" + _times(count)
    if kind == "mm-error":
        try:
            code = MmReturn[mm_return.upper()]
        except KeyError:
            code = None
        if not code:  # SUCCESS is not a fault: U-Boot would take the unprocessed request for the reply
            raise PlatformError(f"{mm_return!r} is not an MM error code; one of "
                                f"{', '.join(e.name for e in MmReturn if e)}")
        p.fault = RequestFault(mm_return=int(code), remaining=count)
        return f"the variable SP answers MM {code.name}" + _times(count)
    if kind == "storage-full":
        platform.secure_flash.full = True
        return "the SP's storage refuses writes (PSA_ERROR_INSUFFICIENT_STORAGE -> EFI_OUT_OF_RESOURCES)"
    if kind == "sp-failure":
        p.state = SpState.DESTROYED if p.abort_action == "destroy" else SpState.ABORTED
        return f"the variable SP failed and is {p.state.value} (abort action {p.abort_action}) until a reset"
    raise PlatformError(f"{kind!r} is not a fault of the variable SP; one of {', '.join(FAULTS)}")


def _times(count: int | None) -> str:
    return " until cleared" if count is None else f" for the next {count} request(s)"


def clear(platform) -> None:
    """Disarm the request faults and the full storage (a failed SP stays failed until a reset)."""
    _partition(platform).fault = None
    platform.secure_flash.full = False
