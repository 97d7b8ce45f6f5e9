"""The UEFI variable store of the variable Secure Partition: Trusted Services' smm-gateway backend.

A model of Trusted Services v1.2.0 components/service/uefi/smm_variable/backend/
(uefi_variable_store.c, variable_index.c, variable_checker.c), kept in its
shape so the two can be read side by side:

- one variable index of ``max_variables`` slots for both stores; a slot is
  found by a djb2 hash of GUID and name (``uid``), the first free slot is
  taken, and GetNextVariableName walks the slots in order;
- two storage backends keyed by ``uid``: the persistent one (the Protected
  Storage SP, here :class:`SecureFlash`, persisted with the platform's
  flash) and the volatile one (SP memory);
- the index is synced to NV storage (object uid 1) before NV data is
  stored, and only NV variables and their constraints are dumped, so a
  restarted store reloads NV variables, purges index entries without data,
  and has lost every volatile variable and every property of one;
- attribute rules, the 4096-byte limit, capacities of 4096 x
  ``max_variables`` per store, VAR_CHECK properties and time-based
  authenticated variables (variable_auth.py).

Values cross in the units the MM buffer carries: names as UCS-2 bytes with
their NUL and the caller's NameSize, GUIDs as the 16 bytes in EFI order.

Why this module is long: the store, its index and its checker are one
component in Trusted Services and are kept together here.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

import attrs

from lfafs.platform import variable_auth as auth
from lfafs.smccc import MASK64
from lfafs.uefi import (
    ATTRIBUTE_MASK_UEFI,
    EFI_GLOBAL_VARIABLE,
    EFI_IMAGE_SECURITY_DATABASE,
    EfiStatus,
    VarAttr,
    guid_bytes,
)

S = EfiStatus
DEFAULT_MAX_VARIABLE_SIZE = 4096  # uefi_variable_store.c
INDEX_MAX_NAME_SIZE = 64  # variable_index.h, VARIABLE_INDEX_MAX_NAME_SIZE (UCS-2 units)
FINGERPRINT_SIZE = 32
INDEX_STORAGE_UID = 1  # SMM_VARIABLE_INDEX_STORAGE_UID

# struct variable_metadata as variable_index_dump() copies it: guid, timestamp, fingerprint,
# name_size (size_t), name[64] (int16), attributes (u32, then 4 bytes of padding), uid (u64).
METADATA = struct.Struct(f"<16s16s{FINGERPRINT_SIZE}sQ{2 * INDEX_MAX_NAME_SIZE}sI4xQ")
CONSTRAINTS = struct.Struct("<HHIQQ")  # struct variable_constraints

# The attribute bits every access tests, as plain ints (IntFlag operators cost more than the test)
_NV, _BS, _RT = int(VarAttr.NON_VOLATILE), int(VarAttr.BOOTSERVICE_ACCESS), int(VarAttr.RUNTIME_ACCESS)
_GLOBAL = guid_bytes(EFI_GLOBAL_VARIABLE)
_SECURITY_DB = guid_bytes(EFI_IMAGE_SECURITY_DATABASE)
_KEY_NAMES = {n: (n + "\0").encode("utf-16-le") for n in ("PK", "KEK", "db", "dbx", "dbt", "dbr")}


def name_unit(name: bytes, i: int) -> int:
    """name[i] as the int16_t Trusted Services reads (0 beyond the bytes it was given)."""
    raw = name[2 * i:2 * i + 2]
    if len(raw) < 2:
        return 0
    v = raw[0] | raw[1] << 8
    return v - 0x10000 if v & 0x8000 else v


@functools.lru_cache(maxsize=1024)  # a pure function, asked again on every access to a variable
def name_hash(guid: bytes, name_size: int, name: bytes) -> int:
    """variable_index.c name_hash(): djb2 over Data1..Data4, then the name up to its first NUL."""
    data1, data2, data3 = struct.unpack_from("<IHH", guid)
    h = 5381
    for v in (data1, data2, data3, *guid[8:16]):
        h = (h * 33 + v) & MASK64
    for i in range(((name_size - 2) & MASK64) // 2):
        if i >= len(name) // 2:
            break  # beyond what the caller sent: the buffer ends (Trusted Services would read on)
        c = name_unit(name, i)
        if c == 0:
            break
        h = (h * 33 + c) & MASK64
    return h


def check_name_terminator(name: bytes, name_size: int) -> int:
    """check_name_terminator(): NameSize >= 2 and name[NameSize / 2 - 1] == 0."""
    if name_size < 2 or name_size // 2 * 2 > len(name) or name_unit(name, name_size // 2 - 1) != 0:
        return S.INVALID_PARAMETER
    return S.SUCCESS


@attrs.define
class Constraints:
    """struct variable_constraints (a VAR_CHECK_VARIABLE_PROPERTY as stored)."""

    revision: int = 0
    property: int = 0
    attributes: int = 0
    min_size: int = 0
    max_size: int = 0


@attrs.define(eq=False)
class VariableInfo:
    """struct variable_entry: metadata, constraints and the slot's flags."""

    guid: bytes
    name_size: int
    name: bytes  # name_size bytes of UCS-2 (at most 128 are kept, as the C array holds)
    uid: int
    attributes: int = 0
    timestamp: bytes = bytes(16)
    fingerprint: bytes = bytes(FINGERPRINT_SIZE)
    constraints: Constraints | None = None  # is_constraints_set
    is_variable_set: bool = False
    dirty: bool = False


class StorageFailure(Exception):
    """The flash behind the store refused a write (psa_its_set(): PSA_ERROR_STORAGE_FAILURE)."""


class SecureStorage:
    """A PSA storage backend: objects by uid (the Protected Storage SP, or SP memory).

    ``changed`` persists the store with the platform's flash. Outside a
    transaction it runs after every change; inside one (``transaction()``,
    one SetVariable) it runs once at the end, and if it fails the objects
    go back to what they were and StorageFailure is raised: a variable is
    either written to flash or not changed at all.
    """

    def __init__(self, objects: dict[int, bytes] | None = None, changed: Callable[[], None] | None = None) -> None:
        self.objects: dict[int, bytes] = dict(objects or {})
        self.changed = changed or (lambda: None)
        self.full = False  # psa_its_set() answers PSA_ERROR_INSUFFICIENT_STORAGE (a fault the owner arms)
        self.committing = False  # True while ``changed`` saves a transaction (the service refuses, not defers)
        self._txn: dict[int, bytes] | None = None
        self._dirty = False

    def set(self, uid: int, data: bytes) -> None:
        self.objects[uid] = bytes(data)
        self._touched()

    def get(self, uid: int) -> bytes | None:
        return self.objects.get(uid)

    def remove(self, uid: int) -> bool:
        if self.objects.pop(uid, None) is None:
            return False
        self._touched()
        return True

    def _touched(self) -> None:
        if self._txn is None:
            self.changed()
        else:
            self._dirty = True

    def begin(self) -> None:
        self._txn, self._dirty = dict(self.objects), False

    def rollback(self) -> None:
        if self._txn is not None:
            self.objects = self._txn
        self._txn, self._dirty = None, False

    def commit(self) -> None:
        """Save the transaction's changes in one flash write; StorageFailure (and nothing changed) if it fails."""
        before, dirty = self._txn, self._dirty
        self._txn, self._dirty = None, False
        if before is None or not dirty:
            return
        self.committing = True
        try:
            self.changed()
        except Exception as e:  # the platform's save hook: a full or read-only disk, no descriptors
            self.objects = before
            raise StorageFailure(str(e)) from None
        finally:
            self.committing = False


_INFO_FIELDS = tuple(f.name for f in attrs.fields(VariableInfo))


class VariableIndex:
    """variable_index.c: a fixed array of slots; entries are found by uid alone.

    Between :meth:`begin` and :meth:`end` every change is undoable by
    :meth:`rollback` (a SetVariable whose flash write fails): the slot array
    is copied at the start and an entry's fields before its first change.
    Every change of an entry therefore goes through a method of the index.
    """

    def __init__(self, max_variables: int) -> None:
        self.max_variables = max_variables
        self.slots: list[VariableInfo | None] = [None] * max_variables
        self._undo: tuple[list[VariableInfo | None], dict[int, tuple[VariableInfo, tuple]]] | None = None

    def begin(self) -> None:
        self._undo = (list(self.slots), {})

    def end(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        if self._undo is None:
            return
        slots, saved = self._undo
        self._undo = None
        self.slots = slots
        for info, values in saved.values():
            for name, value in zip(_INFO_FIELDS, values, strict=True):
                setattr(info, name, value)

    def _note(self, info: VariableInfo) -> None:
        """Keep ``info``'s fields as they were before the transaction first changes it."""
        if self._undo is not None and id(info) not in self._undo[1]:
            self._undo[1][id(info)] = (info, attrs.astuple(info, recurse=False))

    def find(self, guid: bytes, name_size: int, name: bytes) -> VariableInfo | None:
        uid = name_hash(guid, name_size, name)
        return next((e for e in self.slots if e is not None and e.uid == uid), None)

    def find_next(self, guid: bytes, name_size: int, name: bytes) -> tuple[VariableInfo | None, int]:
        """variable_index_find_next(): the next set entry after ``name``, or the first for an empty name."""
        if name_size < 2:
            return None, S.NOT_FOUND
        start = 0
        if name_unit(name, 0) != 0:
            uid = name_hash(guid, name_size, name)
            pos = next((i for i, e in enumerate(self.slots) if e is not None and e.uid == uid), None)
            if pos is None:
                return None, S.INVALID_PARAMETER  # a non-empty name that is not in the index
            start = pos + 1
        for e in self.slots[start:]:
            if e is not None and e.is_variable_set:
                return e, S.SUCCESS
        return None, S.NOT_FOUND

    def add_entry(self, guid: bytes, name_size: int, name: bytes) -> VariableInfo | None:
        if name_size > 2 * INDEX_MAX_NAME_SIZE:
            return None
        pos = next((i for i, e in enumerate(self.slots) if e is None), None)
        if pos is None:
            return None
        info = VariableInfo(guid=bytes(guid), name_size=name_size, name=bytes(name[:name_size]),
                            uid=name_hash(guid, name_size, name))
        self.slots[pos] = info
        return info

    def remove_unused_entry(self, info: VariableInfo | None) -> None:
        if info is not None and info.constraints is None and not info.is_variable_set:
            self.slots[self.slots.index(info)] = None

    @staticmethod
    def _mark_dirty(info: VariableInfo) -> None:
        if info.attributes & VarAttr.NON_VOLATILE:
            info.dirty = True

    def set_variable(self, info: VariableInfo, attributes: int) -> None:
        self._note(info)
        info.attributes = attributes
        info.is_variable_set = True
        self._mark_dirty(info)

    def clear_variable(self, info: VariableInfo) -> None:
        self._note(info)
        self._mark_dirty(info)
        info.is_variable_set = False

    def set_constraints(self, info: VariableInfo, constraints: Constraints) -> None:
        self._note(info)
        info.constraints = constraints
        self._mark_dirty(info)

    def set_authentication(self, info: VariableInfo, timestamp: bytes, fingerprint: bytes) -> None:
        """The timestamp and signer fingerprint of a time-based authenticated variable."""
        self._note(info)
        info.timestamp, info.fingerprint = timestamp, fingerprint

    def dump(self) -> tuple[bytes, bool]:
        """variable_index_dump(): NV variables that are set, each with its constraints flag."""
        out = bytearray()
        any_dirty = False
        for e in self.slots:
            if e is not None and e.is_variable_set and e.attributes & VarAttr.NON_VOLATILE:
                out += METADATA.pack(e.guid, e.timestamp, e.fingerprint, e.name_size, e.name[:128],
                                     e.attributes, e.uid)
                out += bytes([e.constraints is not None])
                if e.constraints is not None:
                    c = e.constraints
                    out += CONSTRAINTS.pack(c.revision, c.property, c.attributes, c.min_size, c.max_size)
            if e is not None and e.dirty:
                any_dirty = True
                self._note(e)
                e.dirty = False
        return bytes(out), any_dirty

    def restore(self, data: bytes) -> None:
        """variable_index_restore(): entries fill slots from 0, each set; a partial record ends it."""
        off, pos = 0, 0
        while off < len(data) and pos < self.max_variables:
            if len(data) - off < METADATA.size + 1:
                break
            g, ts, fp, name_size, name, attributes, uid = METADATA.unpack_from(data, off)
            has_constraints = data[off + METADATA.size] != 0
            off += METADATA.size + 1
            constraints = None
            if has_constraints:
                if len(data) - off < CONSTRAINTS.size:
                    break
                constraints = Constraints(*CONSTRAINTS.unpack_from(data, off))
                off += CONSTRAINTS.size
            self.slots[pos] = VariableInfo(guid=g, name_size=name_size, name=name[:min(name_size, 128)], uid=uid,
                                           attributes=attributes, timestamp=ts, fingerprint=fp,
                                           constraints=constraints, is_variable_set=True)
            pos += 1


@attrs.define
class AccessVariable:
    """SMM_VARIABLE_COMMUNICATE_ACCESS_VARIABLE, decoded from the MM buffer."""

    guid: bytes
    data_size: int
    name_size: int
    attributes: int
    name: bytes
    data: bytes = b""
    attributes_written: bool = False  # GetVariable wrote Attributes back (found and accessible)


class UefiVariableStore:
    """uefi_variable_store.c: SetVariable, GetVariable, GetNextVariableName, QueryVariableInfo, properties."""

    def __init__(self, max_variables: int, persistent: SecureStorage, volatile: SecureStorage, *,
                 max_variable_size: int = DEFAULT_MAX_VARIABLE_SIZE) -> None:
        self.index = VariableIndex(max_variables)
        self.persistent = persistent
        self.volatile = volatile
        self.max_variable_size = max_variable_size
        self.total_capacity = max_variable_size * max_variables
        self.is_boot_service = True
        self._load_variable_index()
        self._purge_orphan_index_entries()

    # -- persistence: load_variable_index(), sync_variable_index(), purge_orphan_index_entries()

    def _load_variable_index(self) -> None:
        data = self.persistent.get(INDEX_STORAGE_UID)
        if data is not None:
            self.index.restore(data)

    def _sync_variable_index(self) -> int:
        data, dirty = self.index.dump()
        if dirty:
            self.persistent.set(INDEX_STORAGE_UID, data)
        return S.SUCCESS

    def _purge_orphan_index_entries(self) -> None:
        orphans = False
        for e in self.index.slots:
            if e is not None and e.is_variable_set and e.attributes & VarAttr.NON_VOLATILE \
                    and self.persistent.get(e.uid) is None:
                self.index.clear_variable(e)
                orphans = True
        if orphans:
            self._sync_variable_index()

    def _backend(self, attributes: int) -> SecureStorage:
        return self.persistent if attributes & _NV else self.volatile

    # -- access control

    def _access_permitted(self, info: VariableInfo) -> int:
        """check_access_permitted(): after ExitBootServices only RT variables are visible."""
        if info.is_variable_set and info.attributes & (_BS | _RT):
            return S.SUCCESS if info.attributes & (_BS if self.is_boot_service else _RT) else S.NOT_FOUND
        return S.SUCCESS

    def _access_permitted_on_set(self, info: VariableInfo, var: AccessVariable) -> int:
        status = self._access_permitted(info)
        if status == S.SUCCESS and info.constraints is not None:
            c = info.constraints  # variable_checker_check_on_set()
            if c.property & 1:
                return S.WRITE_PROTECTED
            if var.data_size < c.min_size or var.data_size > c.max_size:
                return S.INVALID_PARAMETER
        return status

    @staticmethod
    def _check_capabilities(attributes: int) -> int:
        """check_capabilities(): the attribute rules of SetVariable."""
        if attributes & VarAttr.RUNTIME_ACCESS and not attributes & VarAttr.BOOTSERVICE_ACCESS:
            return S.INVALID_PARAMETER
        if attributes & VarAttr.AUTHENTICATED_WRITE_ACCESS:
            return S.UNSUPPORTED
        if attributes & VarAttr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS \
                and attributes & VarAttr.ENHANCED_AUTHENTICATED_ACCESS:
            return S.INVALID_PARAMETER
        if attributes & VarAttr.ENHANCED_AUTHENTICATED_ACCESS:
            return S.UNSUPPORTED
        if attributes & ~ATTRIBUTE_MASK_UEFI:
            return S.UNSUPPORTED
        if attributes & VarAttr.HARDWARE_ERROR_RECORD:
            return S.UNSUPPORTED
        return S.SUCCESS

    # -- SetVariable

    def set_variable(self, var: AccessVariable) -> int:
        """uefi_variable_store_set_variable(), written to flash in one transaction.

        A flash write that fails leaves the store as it was and answers
        EFI_DEVICE_ERROR, as Trusted Services' psa_to_efi_storage_status()
        maps PSA_ERROR_STORAGE_FAILURE (components/service/uefi/smm_variable/
        backend/uefi_variable_store.c).
        """
        self.index.begin()
        self.persistent.begin()
        try:
            status = self._set_variable(var)
        except BaseException:
            self.persistent.rollback()
            self.index.rollback()
            raise
        if status != S.SUCCESS and not self.persistent._dirty:
            self.persistent.rollback()
            self.index.end()
            return status
        try:
            self.persistent.commit()
        except StorageFailure:
            self.index.rollback()
            return S.DEVICE_ERROR
        self.index.end()
        return status

    def _set_variable(self, var: AccessVariable) -> int:
        status = check_name_terminator(var.name, var.name_size)
        if status != S.SUCCESS:
            return status
        status = self._check_capabilities(var.attributes)
        if status != S.SUCCESS:
            return status
        info = self.index.find(var.guid, var.name_size, var.name)
        if info is None:
            if not var.data_size:
                return S.NOT_FOUND
            info = self.index.add_entry(var.guid, var.name_size, var.name)
            if info is None:
                return S.OUT_OF_RESOURCES
        stored_timestamp, fp = info.timestamp, info.fingerprint
        should_sync = False
        status = self._access_permitted_on_set(info, var)
        if status == S.SUCCESS:
            if info.is_variable_set:
                if info.attributes & VarAttr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS:
                    status, stored_timestamp, fp = self._authenticate(stored_timestamp, fp, False, var)
                    if status != S.SUCCESS:
                        return status
                if not var.attributes & (VarAttr.BOOTSERVICE_ACCESS | VarAttr.RUNTIME_ACCESS) or (
                        not var.attributes & (VarAttr.APPEND_WRITE | VarAttr.ENHANCED_AUTHENTICATED_ACCESS)
                        and not var.data_size):
                    # a remove: data first, so no object is ever left without an index entry
                    self._backend(info.attributes).remove(info.uid)
                    self.index.clear_variable(info)
                    should_sync = bool(var.attributes & VarAttr.NON_VOLATILE)
                elif (info.attributes | VarAttr.APPEND_WRITE) != (var.attributes | VarAttr.APPEND_WRITE) \
                        or (var.attributes & ~VarAttr.APPEND_WRITE) != info.attributes:
                    return S.INVALID_PARAMETER  # attributes of an existing variable cannot change
            else:
                if var.attributes & VarAttr.TIME_BASED_AUTHENTICATED_WRITE_ACCESS:
                    status, stored_timestamp, fp = self._authenticate(stored_timestamp, fp, True, var)
                    if status != S.SUCCESS:
                        return status
                if var.data_size:
                    self.index.set_variable(info, var.attributes)
                    should_sync = bool(var.attributes & VarAttr.NON_VOLATILE)
                else:
                    return S.NOT_FOUND
            if should_sync:
                status = self._sync_variable_index()
            if info.is_variable_set and status == S.SUCCESS:
                self.index.set_authentication(info, stored_timestamp, fp)
                status = self._store_variable_data(info, var)
        self.index.remove_unused_entry(info)
        return status

    def _store_variable_data(self, info: VariableInfo, var: AccessVariable) -> int:
        """store_variable_data(): overwrite or append, policing the size limit before any write.

        store_overwrite() and store_append_write() refuse an oversized variable (INVALID_PARAMETER)
        before they call psa_its_set(); only a write that is made meets a full storage
        (PSA_ERROR_INSUFFICIENT_STORAGE -> psa_to_efi_storage_status(): OUT_OF_RESOURCES).
        """
        backend = self._backend(info.attributes)
        data = var.data[:var.data_size]
        if not var.attributes & VarAttr.APPEND_WRITE:
            if len(data) > self.max_variable_size:
                status = S.INVALID_PARAMETER
            elif backend.full and data:
                status = S.OUT_OF_RESOURCES
            else:
                backend.set(info.uid, data)
                status = S.SUCCESS
        elif not data:
            status = S.SUCCESS
        else:
            old = backend.get(info.uid)
            if old is None:
                status = S.NOT_FOUND
            elif len(old) + len(data) > self.max_variable_size:
                status = S.INVALID_PARAMETER
            elif backend.full:
                status = S.OUT_OF_RESOURCES
            else:
                backend.set(info.uid, old + data)
                status = S.SUCCESS
        if status != S.SUCCESS and backend is self.persistent:
            self._purge_orphan_index_entries()
        return status

    # -- GetVariable, GetNextVariableName, QueryVariableInfo

    def get_variable(self, var: AccessVariable, max_data_len: int) -> tuple[int, int]:
        """uefi_variable_store_get_variable(): (status, total_length); fills var.data/data_size/attributes."""
        status = check_name_terminator(var.name, var.name_size)
        if status != S.SUCCESS:
            return status, 0
        info = self.index.find(var.guid, var.name_size, var.name)
        if info is None or not info.is_variable_set:
            return S.NOT_FOUND, 0
        status = self._access_permitted(info)
        if status != S.SUCCESS:
            return status, 0
        stored = self._backend(info.attributes).get(info.uid)
        var.attributes, var.attributes_written = info.attributes, True
        if stored is None:
            return S.NOT_FOUND, 0  # the index says set, the store has no object (psa DOES_NOT_EXIST)
        if min(var.data_size, max_data_len) >= len(stored):
            var.data, var.data_size = stored, len(stored)
            return S.SUCCESS, 36 + var.name_size + var.data_size
        var.data_size = len(stored)
        return S.BUFFER_TOO_SMALL, 36 + var.name_size

    def get_next_variable_name(self, guid: bytes, name_size: int, name: bytes
                               ) -> tuple[int, bytes, int, bytes, int]:
        """uefi_variable_store_get_next_variable_name(): (status, guid, NameSize, name, total length).

        A total length of 0 means nothing was written back (the name had no terminator).
        """
        buffer_size = name_size
        for i in range(buffer_size // 2):
            if i >= len(name) // 2:
                break
            if name_unit(name, i) == 0:
                name_size = 2 * (i + 1)
                break
        status = check_name_terminator(name, name_size)
        if status != S.SUCCESS:
            return status, guid, name_size, name, 0
        cur_guid, cur_size, cur_name = guid, name_size, name
        while True:
            info, status = self.index.find_next(cur_guid, cur_size, cur_name)
            if info is not None and status == S.SUCCESS:
                if info.name_size <= buffer_size:
                    cur_guid, cur_size, cur_name = info.guid, info.name_size, info.name
                    if self._access_permitted(info) == S.SUCCESS:
                        return S.SUCCESS, info.guid, info.name_size, info.name, 24 + info.name_size
                else:
                    return S.BUFFER_TOO_SMALL, bytes(16), info.name_size, b"", 24
            else:
                return (status if status != S.SUCCESS else S.NOT_FOUND), bytes(16), 0, b"", 24

    def query_variable_info(self, attributes: int) -> tuple[int, int, int]:
        """(MaximumVariableStorageSize, Remaining, MaximumVariableSize) of the store the NV bit selects."""
        backend = self._backend(attributes)
        used = sum(len(backend.get(e.uid) or b"") for e in self.index.slots
                   if e is not None and e.is_variable_set
                   and (e.attributes & VarAttr.NON_VOLATILE) == (attributes & VarAttr.NON_VOLATILE))
        remaining = self.total_capacity - used if used < self.total_capacity else 0
        return self.total_capacity, remaining, self.max_variable_size

    def exit_boot_service(self) -> int:
        self.is_boot_service = False
        return S.SUCCESS

    # -- VAR_CHECK properties

    def set_var_check_property(self, guid: bytes, name_size: int, name: bytes, prop: Constraints) -> int:
        status = check_name_terminator(name, name_size)
        if status != S.SUCCESS:
            return status
        info = self.index.find(guid, name_size, name)
        if info is None:
            info = self.index.add_entry(guid, name_size, name)
            if info is None:
                return S.OUT_OF_RESOURCES
        if prop.revision != 1 or prop.min_size > prop.max_size:  # variable_checker_set_constraints()
            status = S.INVALID_PARAMETER
        else:
            self.index.set_constraints(info, attrs.evolve(prop))
            status = self._sync_variable_index()
        self.index.remove_unused_entry(info)
        return status

    def get_var_check_property(self, guid: bytes, name_size: int, name: bytes) -> tuple[int, Constraints | None]:
        status = check_name_terminator(name, name_size)
        if status != S.SUCCESS:
            return status, None
        info = self.index.find(guid, name_size, name)
        if info is not None and info.constraints is not None:
            return S.SUCCESS, attrs.evolve(info.constraints)
        return S.NOT_FOUND, None

    # -- authenticated variables (UEFI_AUTH_VAR)

    def _authenticate(self, stored_timestamp: bytes, fp: bytes, new: bool, var: AccessVariable
                      ) -> tuple[int, bytes, bytes]:
        """authenticate_variable(): checks, then strips the descriptor from ``var`` on success."""
        desc = auth.parse_descriptor(var.data[:var.data_size])
        if desc is None:
            return S.SECURITY_VIOLATION, stored_timestamp, fp
        _, _, _, _, _, _, pad1, nanosecond, timezone, daylight, pad2 = auth.EFI_TIME.unpack(desc.timestamp)
        if pad1 or pad2 or nanosecond or timezone or daylight:
            return S.SECURITY_VIOLATION, stored_timestamp, fp
        if desc.timestamp > stored_timestamp:  # memcmp() of the two EFI_TIMEs, as Trusted Services does
            stored_timestamp = desc.timestamp
        elif not var.attributes & VarAttr.APPEND_WRITE:
            return S.SECURITY_VIOLATION, stored_timestamp, fp
        name_ucs2 = var.name[:max(0, var.name_size - 2)]
        digest = auth.digest(name_ucs2, var.guid, var.attributes, desc.timestamp, desc.payload)
        key_name = next((n for n, raw in _KEY_NAMES.items() if var.name_size == len(raw)
                         and var.name[:var.name_size] == raw), None)
        if key_name is None:  # a private authenticated variable: authenticate_private_variable()
            if not auth.verify_standin(desc.cert_data, digest, None):
                return S.SECURITY_VIOLATION, stored_timestamp, fp
            new_fp = auth.fingerprint(desc.cert_data)
            if not new and new_fp != fp:
                return S.SECURITY_VIOLATION, stored_timestamp, fp
            fp = new_fp if new else fp
            status = S.SUCCESS
        else:
            status = self._authenticate_secure_boot(key_name, var, desc, digest)
        if status == S.SUCCESS:
            var.data = desc.payload
            var.data_size = len(desc.payload)
        return status, stored_timestamp, fp

    def _key_payload(self, name: str) -> tuple[int, bytes]:
        raw = _KEY_NAMES[name]
        probe = AccessVariable(guid=_GLOBAL, data_size=self.max_variable_size, name_size=len(raw), attributes=0,
                               name=raw)
        status, _ = self.get_variable(probe, self.max_variable_size)
        return status, probe.data if status == S.SUCCESS else b""

    def _authenticate_secure_boot(self, key_name: str, var: AccessVariable, desc: auth.AuthDescriptor,
                                  digest: bytes) -> int:
        """authenticate_secure_boot_variable(): no PK, or an empty one, disables the signature check."""
        status, pk = self._key_payload("PK")
        if status == S.NOT_FOUND:
            return S.SUCCESS
        if status != S.SUCCESS:
            return S.SECURITY_VIOLATION
        if not pk:
            return S.SUCCESS
        if key_name in ("PK", "KEK"):
            if var.guid != _GLOBAL:
                return S.SECURITY_VIOLATION
            keys = ["PK"]
        else:
            if var.guid != _SECURITY_DB:
                return S.SECURITY_VIOLATION
            keys = ["PK", "KEK"]
        status = S.SECURITY_VIOLATION
        for key in keys:  # the first key variable that verifies wins; a missing one ends the walk
            found, payload = self._key_payload(key)
            if found != S.SUCCESS:
                return S.SECURITY_VIOLATION if found == S.NOT_FOUND else found
            status = S.SECURITY_VIOLATION
            for cert in auth.iter_x509(payload):
                if cert is None:  # verify_var_by_key_var(): a list of another type
                    status = S.INVALID_PARAMETER
                    break
                if auth.verify_standin(desc.cert_data, digest, cert):
                    return S.SUCCESS
        return status

    def provision(self, guid: bytes, name: bytes, attributes: int, data: bytes) -> int:
        """Factory provisioning of an NV variable: index and storage written as a flash image would hold them.

        No SetVariable rules apply (a PK is written without an authentication
        descriptor, as a platform's build tools put it in the image).
        """
        info = self.index.find(guid, len(name), name) or self.index.add_entry(guid, len(name), name)
        if info is None:
            return S.OUT_OF_RESOURCES
        self.index.set_variable(info, attributes)
        self._sync_variable_index()
        self.persistent.set(info.uid, data)
        return S.SUCCESS

    # -- live state (the variable SP's choice of what survives a live activation) --------------

    def live_state(self) -> dict:
        """Everything of this store that is not in NV storage: the index, the volatile objects, the phase."""
        return {"slots": [attrs.evolve(e, constraints=attrs.evolve(e.constraints) if e.constraints else None)
                          if e is not None else None for e in self.index.slots],
                "volatile": dict(self.volatile.objects), "is_boot_service": self.is_boot_service}

    def restore_live_state(self, state: dict) -> None:
        self.index.slots = list(state["slots"])
        self.volatile.objects = dict(state["volatile"])
        self.is_boot_service = state["is_boot_service"]
