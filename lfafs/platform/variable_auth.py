"""Time-based authenticated variables: the descriptor, signature lists, and a stand-in for PKCS#7.

The layouts are UEFI's (EFI_VARIABLE_AUTHENTICATION_2, WIN_CERTIFICATE_UEFI_GUID,
EFI_SIGNATURE_LIST) and the checks are Trusted Services'
components/service/uefi/smm_variable/backend/uefi_variable_store.c
(init_efi_data_map(), authenticate_variable(), verify_var_by_key_var(),
authenticate_private_variable()).

What is not real: PKCS#7 SignedData and X.509. lfafs has no ASN.1 parser, so
CertData is a stand-in that carries the signer's certificate (any bytes) and
an HMAC-SHA256 of the variable digest keyed by that certificate. A
"certificate" in a signature list verifies a signature when it equals the
signer's; the fingerprint of a private variable is the SHA-256 of the
signer's certificate. Tests and tools sign with :func:`sign`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

import attrs

from lfafs.uefi import EFI_CERT_TYPE_PKCS7, EFI_CERT_X509, guid_bytes, guid_from_bytes

EFI_TIME = struct.Struct("<HBBBBBBIhBB")  # Year Month Day Hour Minute Second Pad1 Nanosecond TimeZone Daylight Pad2
WIN_CERTIFICATE = struct.Struct("<IHH")  # dwLength, wRevision, wCertificateType
WIN_CERT_CURRENT_VERSION = 0x0200
WIN_CERT_TYPE_EFI_GUID = 0x0EF1
AUTH2_SIZE_WITHOUT_CERTDATA = EFI_TIME.size + WIN_CERTIFICATE.size + 16  # 40
SIGNATURE_LIST = struct.Struct("<16sIII")  # SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize
STANDIN_MAGIC = b"LFAFS-PKCS7\0"
_STANDIN_HEAD = struct.Struct("<12sI")  # magic, certificate length


def efi_time(year: int, month: int = 1, day: int = 1, hour: int = 0, minute: int = 0, second: int = 0) -> bytes:
    """An EFI_TIME with Pad1, Nanosecond, TimeZone, Daylight and Pad2 zero, as authentication requires."""
    return EFI_TIME.pack(year, month, day, hour, minute, second, 0, 0, 0, 0, 0)


def digest(name_ucs2: bytes, guid: bytes, attributes: int, timestamp: bytes, payload: bytes) -> bytes:
    """calc_variable_hash(): SHA-256 of name (no NUL), vendor GUID, attributes, TimeStamp, payload."""
    h = hashlib.sha256()
    for part in (name_ucs2, guid, struct.pack("<I", attributes), timestamp, payload):
        h.update(part)
    return h.digest()


def standin_signature(certificate: bytes, variable_digest: bytes) -> bytes:
    """CertData standing in for PKCS#7 SignedData made with ``certificate``."""
    mac = hmac.new(certificate, variable_digest, hashlib.sha256).digest()
    return _STANDIN_HEAD.pack(STANDIN_MAGIC, len(certificate)) + certificate + mac


def parse_standin(cert_data: bytes) -> tuple[bytes, bytes] | None:
    """(certificate, mac) of a stand-in signature, or None when it does not parse."""
    if len(cert_data) < _STANDIN_HEAD.size:
        return None
    magic, n = _STANDIN_HEAD.unpack_from(cert_data)
    end = _STANDIN_HEAD.size + n
    if magic != STANDIN_MAGIC or len(cert_data) != end + 32:
        return None
    return cert_data[_STANDIN_HEAD.size:end], cert_data[end:]


def verify_standin(cert_data: bytes, variable_digest: bytes, trusted: bytes | None) -> bool:
    """verify_pkcs7_signature(): the signature is good, and made by ``trusted`` when one is given."""
    parsed = parse_standin(cert_data)
    if parsed is None:
        return False
    cert, mac = parsed
    if trusted is not None and cert != trusted:
        return False
    return hmac.compare_digest(mac, hmac.new(cert, variable_digest, hashlib.sha256).digest())


def fingerprint(cert_data: bytes) -> bytes | None:
    """get_uefi_priv_auth_var_fingerprint(): here the SHA-256 of the signer's certificate."""
    parsed = parse_standin(cert_data)
    return None if parsed is None else hashlib.sha256(parsed[0]).digest()


def signature_list(certificates: list[bytes], owner: uuid.UUID = uuid.UUID(int=0)) -> bytes:
    """An EFI_SIGNATURE_LIST of X.509 certificates (one list per certificate, as sbsiglist makes them)."""
    out = b""
    for cert in certificates:
        size = 16 + len(cert)
        out += SIGNATURE_LIST.pack(guid_bytes(EFI_CERT_X509), SIGNATURE_LIST.size + size, 0, size)
        out += guid_bytes(owner) + cert
    return out


@attrs.frozen
class AuthDescriptor:
    """init_efi_data_map() with the authentication header: where the parts of the data are."""

    timestamp: bytes
    cert_data: bytes
    descriptor_len: int
    payload: bytes


def parse_descriptor(data: bytes) -> AuthDescriptor | None:
    """The checks of init_efi_data_map(..., with_auth_hdr=true); None where it returns false."""
    if len(data) < AUTH2_SIZE_WITHOUT_CERTDATA:
        return None
    timestamp = data[:EFI_TIME.size]
    dw_length, revision, cert_type = WIN_CERTIFICATE.unpack_from(data, EFI_TIME.size)
    descriptor_len = EFI_TIME.size + dw_length
    if descriptor_len > len(data):
        return None
    certdata_len = dw_length - WIN_CERTIFICATE.size - 16
    if certdata_len < 0 or certdata_len > len(data):
        return None
    if revision != WIN_CERT_CURRENT_VERSION or cert_type != WIN_CERT_TYPE_EFI_GUID:
        return None
    if guid_from_bytes(data[EFI_TIME.size + WIN_CERTIFICATE.size:][:16]) != EFI_CERT_TYPE_PKCS7:
        return None
    if descriptor_len < AUTH2_SIZE_WITHOUT_CERTDATA:
        return None
    cert_data = data[AUTH2_SIZE_WITHOUT_CERTDATA:AUTH2_SIZE_WITHOUT_CERTDATA + certdata_len]
    return AuthDescriptor(timestamp=timestamp, cert_data=cert_data, descriptor_len=descriptor_len,
                          payload=data[descriptor_len:])


def authenticated_data(name: str, guid: uuid.UUID, attributes: int, payload: bytes, timestamp: bytes,
                       certificate: bytes) -> bytes:
    """What a tool writes: EFI_VARIABLE_AUTHENTICATION_2 signed with ``certificate``, then ``payload``."""
    name_ucs2 = name.encode("utf-16-le", "surrogatepass")
    cert_data = standin_signature(certificate, digest(name_ucs2, guid_bytes(guid), attributes, timestamp, payload))
    win = WIN_CERTIFICATE.pack(WIN_CERTIFICATE.size + 16 + len(cert_data), WIN_CERT_CURRENT_VERSION,
                               WIN_CERT_TYPE_EFI_GUID)
    return timestamp + win + guid_bytes(EFI_CERT_TYPE_PKCS7) + cert_data + payload


def iter_x509(signature_lists: bytes):
    """The certificates of the X.509 lists, as verify_var_by_key_var() walks them.

    Yields certificates; yields ``None`` once for a list of another type
    (Trusted Services answers EFI_INVALID_PARAMETER there) and stops.
    A list whose size is 0 would make Trusted Services spin for ever; the
    walk stops there instead.
    """
    remaining = len(signature_lists)
    off = 0
    while remaining > 0:
        if remaining < SIGNATURE_LIST.size:
            return
        sig_type, list_size, header_size, sig_size = SIGNATURE_LIST.unpack_from(signature_lists, off)
        if list_size == 0 or remaining < list_size:
            return
        if guid_from_bytes(sig_type) != EFI_CERT_X509:
            yield None
            return
        first = off + SIGNATURE_LIST.size + header_size
        count = (list_size - SIGNATURE_LIST.size - header_size) // sig_size if sig_size else 0
        for i in range(max(0, count)):
            start = first + i * sig_size
            yield signature_lists[start + 16:start + sig_size]
        remaining -= list_size
        off += list_size
