"""The variable SP's store: attribute rules, limits, QueryVariableInfo, properties, persistence, authentication.

Sources: Trusted Services v1.2.0 components/service/uefi/smm_variable/backend/
uefi_variable_store.c (check_capabilities(), check_access_permitted(),
uefi_variable_store_set_variable(), store_overwrite(),
uefi_variable_store_query_variable_info(), authenticate_variable(),
authenticate_secure_boot_variable(), authenticate_private_variable()),
variable_index.c (add_entry(), variable_index_find_next(),
variable_index_dump()), variable_checker.c.
"""

from __future__ import annotations

import pytest

from lfafs.platform import variable_auth as auth
from lfafs.platform.variable_store import AccessVariable, Constraints, SecureStorage, UefiVariableStore
from lfafs.uefi import EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, guid_bytes, ucs2
from lfafs.uefi import EfiStatus as S

G = guid_bytes(EFI_GLOBAL_VARIABLE)
DB = guid_bytes(EFI_IMAGE_SECURITY_DATABASE)
OTHER = bytes(range(16))
NV_BS_RT, BS_RT, AT = 7, 6, 0x20


def store(max_variables: int = 8, nv: SecureStorage | None = None) -> UefiVariableStore:
    return UefiVariableStore(max_variables, nv if nv is not None else SecureStorage(), SecureStorage())


def setv(s: UefiVariableStore, name: str, data: bytes, attributes: int = NV_BS_RT, guid: bytes = G) -> int:
    raw = ucs2(name)
    return s.set_variable(AccessVariable(guid=guid, data_size=len(data), name_size=len(raw),
                                         attributes=attributes, name=raw, data=data))


def getv(s: UefiVariableStore, name: str, guid: bytes = G, size: int = 4096) -> tuple[int, int, bytes]:
    raw = ucs2(name)
    var = AccessVariable(guid=guid, data_size=size, name_size=len(raw), attributes=0, name=raw)
    status, _ = s.get_variable(var, 4096)
    return status, var.attributes, var.data if status == S.SUCCESS else b""


def walk(s: UefiVariableStore) -> list[str]:
    out, guid, name = [], bytes(16), b"\0\0"
    while True:
        status, guid, size, raw, _ = s.get_next_variable_name(guid, 1024, name)
        if status != S.SUCCESS:
            return out
        name = raw
        out.append(raw[:size - 2].decode("utf-16-le"))


@pytest.mark.parametrize(("attributes", "status"), [
    (0x04 | 0x01, S.INVALID_PARAMETER),  # runtime access implies boot-service access
    (0x10 | NV_BS_RT, S.UNSUPPORTED),  # AUTHENTICATED_WRITE_ACCESS is deprecated
    (0x20 | 0x80 | NV_BS_RT, S.INVALID_PARAMETER),  # time-based and enhanced together
    (0x80 | NV_BS_RT, S.UNSUPPORTED),  # EFI_VARIABLE_AUTHENTICATION_3
    (0x100 | NV_BS_RT, S.UNSUPPORTED),  # a bit UEFI does not define
    (0x08 | NV_BS_RT, S.UNSUPPORTED),  # HARDWARE_ERROR_RECORD
])
def test_attribute_rules_of_set_variable(attributes, status):
    assert setv(store(), "Var", b"x", attributes) == status


def test_data_over_the_variable_size_limit_is_invalid_and_leaves_no_entry():
    s = store()
    assert setv(s, "Big", bytes(4097)) == S.INVALID_PARAMETER
    assert setv(s, "Big", bytes(4096)) == S.SUCCESS
    assert setv(s, "Big", b"x", NV_BS_RT | 0x40) == S.INVALID_PARAMETER  # the append result is too big too
    assert getv(s, "Big")[2] == bytes(4096)


def test_a_full_index_is_out_of_resources_and_a_long_name_does_not_fit_an_entry():
    s = store(max_variables=2)
    assert setv(s, "A", b"1") == setv(s, "B", b"2") == S.SUCCESS
    assert setv(s, "C", b"3") == S.OUT_OF_RESOURCES
    assert setv(store(), "N" * 64, b"x") == S.OUT_OF_RESOURCES  # 65 units with the NUL: over 64


def test_changing_the_attributes_of_a_variable_is_invalid_but_append_may_differ():
    s = store()
    assert setv(s, "V", b"1") == S.SUCCESS
    assert setv(s, "V", b"2", BS_RT) == S.INVALID_PARAMETER
    assert setv(s, "V", b"2", NV_BS_RT | 0x40) == S.SUCCESS
    assert getv(s, "V")[2] == b"12"


def test_deleting_by_empty_data_or_no_access_and_a_missing_variable_is_not_found():
    s = store()
    assert setv(s, "V", b"1") == S.SUCCESS
    assert setv(s, "V", b"", NV_BS_RT) == S.SUCCESS and getv(s, "V")[0] == S.NOT_FOUND
    assert setv(s, "W", b"1") == S.SUCCESS
    assert setv(s, "W", b"", 0) == S.SUCCESS and getv(s, "W")[0] == S.NOT_FOUND
    assert setv(s, "W", b"", 0) == S.NOT_FOUND


def test_after_exit_boot_services_only_runtime_variables_are_visible():
    s = store()
    setv(s, "BsOnly", b"1", 0x3)
    setv(s, "Rt", b"2")
    s.exit_boot_service()
    assert getv(s, "BsOnly")[0] == S.NOT_FOUND
    assert walk(s) == ["Rt"]
    assert setv(s, "BsOnly", b"3", 0x3) == S.NOT_FOUND  # an existing one cannot be changed
    assert setv(s, "NewBs", b"4", 0x3) == S.SUCCESS  # but a new one is accepted (edk2 would refuse)


def test_get_next_variable_name_walks_index_slots_and_a_freed_slot_is_reused():
    s = store()
    for n in ("A", "B", "C"):
        setv(s, n, b"x")
    setv(s, "B", b"")
    setv(s, "D", b"x")
    assert walk(s) == ["A", "D", "C"]


def test_get_next_variable_name_reports_the_size_it_needs_and_refuses_an_unknown_start():
    s = store()
    setv(s, "LongerName", b"x")
    status, _, size, _, _ = s.get_next_variable_name(bytes(16), 4, b"\0\0\0\0")
    assert (status, size) == (S.BUFFER_TOO_SMALL, 22)
    assert s.get_next_variable_name(G, 10, ucs2("Nope"))[0] == S.INVALID_PARAMETER


def test_query_variable_info_reports_each_store_by_the_nv_bit():
    s = store(max_variables=4)
    setv(s, "Nv", bytes(100))
    setv(s, "Vol", bytes(30), BS_RT)
    assert s.query_variable_info(NV_BS_RT) == (4 * 4096, 4 * 4096 - 100, 4096)
    assert s.query_variable_info(BS_RT) == (4 * 4096, 4 * 4096 - 30, 4096)


def test_nv_variables_and_their_properties_survive_a_restart_and_volatile_ones_do_not():
    nv = SecureStorage()
    s = store(nv=nv)
    setv(s, "Nv", b"keep")
    setv(s, "Vol", b"lose", BS_RT)
    raw = ucs2("Nv")
    s.set_var_check_property(G, len(raw), raw, Constraints(1, 0, 0, 1, 8))
    raw = ucs2("Vol")
    s.set_var_check_property(G, len(raw), raw, Constraints(1, 1, 0, 1, 8))
    again = store(nv=nv)
    assert getv(again, "Nv")[2] == b"keep" and getv(again, "Vol")[0] == S.NOT_FOUND
    assert again.get_var_check_property(G, len(ucs2("Nv")), ucs2("Nv"))[1] == Constraints(1, 0, 0, 1, 8)
    assert again.get_var_check_property(G, len(raw), raw)[0] == S.NOT_FOUND


def test_an_index_entry_without_data_is_purged_at_load():
    nv = SecureStorage()
    s = store(nv=nv)
    setv(s, "Gone", b"x")
    uid = next(e.uid for e in s.index.slots if e is not None)
    del nv.objects[uid]  # a power failure between the index sync and the data write
    assert getv(store(nv=nv), "Gone")[0] == S.NOT_FOUND


def test_a_read_only_property_write_protects_and_sizes_are_checked():
    s = store()
    setv(s, "Ro", b"1", BS_RT)
    raw = ucs2("Ro")
    assert s.set_var_check_property(G, len(raw), raw, Constraints(1, 1, BS_RT, 1, 1)) == S.SUCCESS
    assert setv(s, "Ro", b"2", BS_RT) == S.WRITE_PROTECTED
    assert s.set_var_check_property(G, len(raw), raw, Constraints(1, 0, BS_RT, 1, 1)) == S.SUCCESS
    assert setv(s, "Ro", b"22", BS_RT) == S.INVALID_PARAMETER  # over MaxSize
    assert s.set_var_check_property(G, len(raw), raw, Constraints(2, 0, 0, 0, 0)) == S.INVALID_PARAMETER
    assert s.set_var_check_property(G, len(raw), raw, Constraints(1, 0, 0, 5, 1)) == S.INVALID_PARAMETER


# -- time-based authenticated variables ----------------------------------------------------------

PK_CERT, KEK_CERT, OTHER_CERT = b"pk cert", b"kek cert", b"someone else"
AUTH = NV_BS_RT | AT


def signed(name: str, payload: bytes, cert: bytes, year: int = 2026, guid=EFI_GLOBAL_VARIABLE,
           attributes: int = AUTH) -> bytes:
    return auth.authenticated_data(name, guid, attributes, payload, auth.efi_time(year), cert)


def test_without_pk_a_well_formed_descriptor_is_accepted_and_stripped():
    s = store()
    assert setv(s, "db", signed("db", b"list", OTHER_CERT, guid=EFI_IMAGE_SECURITY_DATABASE), AUTH, DB) == S.SUCCESS
    assert getv(s, "db", DB)[1:] == (AUTH, b"list")
    assert setv(s, "KEK", b"not a descriptor", AUTH) == S.SECURITY_VIOLATION


def test_the_timestamp_must_increase_unless_appending():
    s = store()
    assert setv(s, "KEK", signed("KEK", b"a", KEK_CERT, 2026), AUTH) == S.SUCCESS
    assert setv(s, "KEK", signed("KEK", b"b", KEK_CERT, 2026), AUTH) == S.SECURITY_VIOLATION
    appended = signed("KEK", b"b", KEK_CERT, 2026, attributes=AUTH | 0x40)
    assert setv(s, "KEK", appended, AUTH | 0x40) == S.SUCCESS
    assert setv(s, "KEK", signed("KEK", b"c", KEK_CERT, 2027), AUTH) == S.SUCCESS
    # memcmp() of little-endian years: 2048 (00 08) sorts before 2047 (ff 07)
    assert setv(s, "KEK", signed("KEK", b"d", KEK_CERT, 2048), AUTH) == S.SECURITY_VIOLATION


def test_with_pk_keys_must_be_signed_by_pk_and_databases_by_pk_or_kek():
    s = store()
    assert setv(s, "PK", signed("PK", auth.signature_list([PK_CERT]), PK_CERT, 2026), AUTH) == S.SUCCESS
    assert setv(s, "KEK", signed("KEK", auth.signature_list([KEK_CERT]), OTHER_CERT, 2026), AUTH) \
        == S.SECURITY_VIOLATION
    assert setv(s, "KEK", signed("KEK", auth.signature_list([KEK_CERT]), PK_CERT, 2026), AUTH) == S.SUCCESS
    db = signed("db", b"entries", KEK_CERT, 2026, guid=EFI_IMAGE_SECURITY_DATABASE)
    assert setv(s, "db", db, AUTH, DB) == S.SUCCESS
    wrong_vendor = signed("db", b"entries", KEK_CERT, 2026)
    assert setv(s, "db", wrong_vendor, AUTH, G) == S.SECURITY_VIOLATION


def test_an_authenticated_variable_cannot_be_deleted_with_empty_data():
    s = store()
    setv(s, "KEK", signed("KEK", b"a", KEK_CERT), AUTH)
    assert setv(s, "KEK", b"", 0) == S.SECURITY_VIOLATION


def test_a_private_authenticated_variable_keeps_its_signer():
    s = store()
    assert setv(s, "Mine", signed("Mine", b"v1", OTHER_CERT, 2026), AUTH) == S.SUCCESS
    assert setv(s, "Mine", signed("Mine", b"v2", KEK_CERT, 2027), AUTH) == S.SECURITY_VIOLATION
    assert setv(s, "Mine", signed("Mine", b"v2", OTHER_CERT, 2027), AUTH) == S.SUCCESS
    forged = bytearray(signed("Mine", b"v3", OTHER_CERT, 2028))
    forged[-1] ^= 1  # the payload no longer matches the signature
    assert setv(s, "Mine", bytes(forged), AUTH) == S.SECURITY_VIOLATION


def test_a_failed_flash_write_undoes_every_index_change_of_the_set_variable():
    """A SetVariable whose flash write fails answers DEVICE_ERROR and leaves index and data as they were.

    Trusted Services uefi_variable_store.c maps psa_its_set()'s PSA_ERROR_STORAGE_FAILURE to
    EFI_DEVICE_ERROR (psa_to_efi_storage_status()); the model writes one flash image per SetVariable,
    so the index changes made before the write (a new slot, a cleared entry, the dirty flags) go too.
    """
    failing = {"on": False}

    def changed() -> None:
        if failing["on"]:
            raise OSError("No space left on device")

    nv = SecureStorage(changed=changed)
    s = store(nv=nv)
    assert setv(s, "Kept", b"old") == S.SUCCESS
    assert setv(s, "Gone", b"g") == S.SUCCESS
    assert setv(s, "Gone", b"", attributes=0) == S.SUCCESS  # a delete without NV: the entry stays dirty
    before_walk, before_flash = walk(s), dict(nv.objects)
    failing["on"] = True
    assert setv(s, "Kept", b"new") == S.DEVICE_ERROR
    assert setv(s, "Kept", b"", attributes=0) == S.DEVICE_ERROR
    assert setv(s, "Fresh", b"f") == S.DEVICE_ERROR
    assert (walk(s), nv.objects, getv(s, "Kept")[2]) == (before_walk, before_flash, b"old")
    assert getv(s, "Fresh")[0] == S.NOT_FOUND
    failing["on"] = False
    # the index was not left half-changed: the next write is written whole, and a reload agrees
    assert setv(s, "Fresh", b"f") == S.SUCCESS
    reloaded = UefiVariableStore(8, SecureStorage(nv.objects), SecureStorage())
    assert walk(reloaded) == walk(s) == before_walk + ["Fresh"]
    assert getv(reloaded, "Kept")[2] == b"old"
