"""Known-answer tests of the primitives value format v1 is built on.

The answers come from the ``cryptography_vectors`` package (the test vectors the
`cryptography` project publishes), read at test time; see ``tests/vectors/README.md``
for each file's upstream source. Only the parameter sets the format uses are checked:
AES-256-GCM with 96-bit nonces and 128-bit tags (NIST CAVP), AES-SIV (RFC 5297 and
OpenSSL), HKDF-SHA256 (RFC 5869) and HMAC-SHA256 (RFC 4231).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography_vectors import open_vector_file

Record = dict[str, str]


def load(path: str, start: tuple[str, ...] = ("Count", "COUNT")) -> list[Record]:
    """Parse a ``KEY = value`` vector file into records.

    A record opens at a line whose key is in *start* and collects every following
    ``KEY = value`` line (blank lines and ``#`` comments are skipped) until the next
    one. ``[Name = value]`` lines (NIST .rsp section headers) apply to every record
    that follows them; a bare ``FAIL`` line marks the record as a forgery.
    """
    records: list[Record] = []
    section: Record = {}
    current: Record | None = None
    with open_vector_file(path, "r") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                name, _, value = line[1:-1].partition("=")
                section[name.strip()] = value.strip()
                continue
            if line == "FAIL":
                assert current is not None, f"{path}: FAIL outside a record"
                current["FAIL"] = "1"
                continue
            key, sep, value = line.partition("=")
            assert sep, f"{path}: cannot parse {line!r}"
            key, value = key.strip(), value.strip()
            if key in start:
                current = {**section, key: value}
                records.append(current)
            else:
                assert current is not None, f"{path}: {key} outside a record"
                assert key not in current, f"{path}: {key} twice in one record"
                current[key] = value
    return records


def unhex(record: Record, key: str) -> bytes:
    return bytes.fromhex(record.get(key, ""))


def ours(record: Record) -> bool:
    """The GCM parameters of value format v1: 256-bit key, 96-bit nonce, 128-bit tag."""
    return (record["Keylen"], record["IVlen"], record["Taglen"]) == ("256", "96", "128")


def gcm_id(record: Record) -> str:
    return f"pt{record['PTlen']}-aad{record['AADlen']}-count{record['Count']}"


GCM_ENCRYPT = [r for r in load("ciphers/AES/GCM/gcmEncryptExtIV256.rsp") if ours(r)]
GCM_DECRYPT = [r for r in load("ciphers/AES/GCM/gcmDecrypt256.rsp") if ours(r)]
SIV = load("ciphers/AES/SIV/openssl.txt")
HKDF_SHA256 = [r for r in load("KDF/rfc-5869-HKDF-SHA256.txt") if r["Hash"] == "SHA-256"]
HMAC_SHA256 = load("HMAC/rfc-4231-sha256.txt", start=("Len",))


class TestVectorFiles:
    """The parser finds every record we mean to check (a parser bug cannot skip them)."""

    def test_gcm_encrypt_count(self) -> None:
        # 25 (PTlen, AADlen) sections of 15 vectors at our key, nonce and tag sizes.
        assert 375 == len(GCM_ENCRYPT)

    def test_gcm_decrypt_count(self) -> None:
        assert 375 == len(GCM_DECRYPT)
        assert {"fail": 191, "pass": 184} == {
            "fail": sum("FAIL" in r for r in GCM_DECRYPT),
            "pass": sum("FAIL" not in r for r in GCM_DECRYPT),
        }

    def test_siv_count(self) -> None:
        """RFC 5297 A.1 and A.2 (32-byte keys), then OpenSSL's 48- and 64-byte key cases."""
        assert [32, 32, 48, 64] == [len(unhex(r, "Key")) for r in SIV]

    def test_hkdf_count(self) -> None:
        assert ["1", "2", "3"] == [r["COUNT"] for r in HKDF_SHA256]

    def test_hmac_count(self) -> None:
        assert 6 == len(HMAC_SHA256)


class TestAesGcm:
    """AES-256-GCM (NIST CAVP gcmEncryptExtIV256 / gcmDecrypt256, 96-bit IV, 128-bit tag)."""

    @pytest.mark.parametrize("record", GCM_ENCRYPT, ids=gcm_id)
    def test_encrypt(self, record: Record) -> None:
        aead = AESGCM(unhex(record, "Key"))
        sealed = aead.encrypt(unhex(record, "IV"), unhex(record, "PT"), unhex(record, "AAD"))
        assert unhex(record, "CT") + unhex(record, "Tag") == sealed

    @pytest.mark.parametrize("record", GCM_DECRYPT, ids=gcm_id)
    def test_decrypt(self, record: Record) -> None:
        aead = AESGCM(unhex(record, "Key"))
        args = (
            unhex(record, "IV"),
            unhex(record, "CT") + unhex(record, "Tag"),
            unhex(record, "AAD"),
        )
        if "FAIL" in record:
            with pytest.raises(InvalidTag):
                aead.decrypt(*args)
        else:
            assert unhex(record, "PT") == aead.decrypt(*args)


class TestAesSiv:
    """AES-SIV (RFC 5297 Appendix A; OpenSSL's AES-192/256-SIV cases of the same file)."""

    @staticmethod
    def associated_data(record: Record) -> list[bytes]:
        """AAD, AAD2, AAD3, ...: RFC 5297 A.2 passes its nonce as the last component."""
        keys = sorted((k for k in record if k.startswith("AAD")), key=lambda k: (len(k), k))
        return [unhex(record, k) for k in keys]

    @pytest.mark.parametrize("record", SIV, ids=lambda r: f"count{r['COUNT']}")
    def test_encrypt(self, record: Record) -> None:
        sealed = AESSIV(unhex(record, "Key")).encrypt(
            unhex(record, "Plaintext"), self.associated_data(record)
        )
        assert unhex(record, "Tag") + unhex(record, "Ciphertext") == sealed

    @pytest.mark.parametrize("record", SIV, ids=lambda r: f"count{r['COUNT']}")
    def test_decrypt(self, record: Record) -> None:
        plaintext = AESSIV(unhex(record, "Key")).decrypt(
            unhex(record, "Tag") + unhex(record, "Ciphertext"), self.associated_data(record)
        )
        assert unhex(record, "Plaintext") == plaintext

    @pytest.mark.parametrize("record", SIV, ids=lambda r: f"count{r['COUNT']}")
    @pytest.mark.parametrize("bit", [0, 7, 127, 128])
    def test_flipped_bit_is_rejected(self, record: Record, bit: int) -> None:
        """A bit flipped in V (the synthetic IV and tag) or in the ciphertext."""
        sealed = bytearray(unhex(record, "Tag") + unhex(record, "Ciphertext"))
        sealed[bit // 8] ^= 0x80 >> (bit % 8)
        with pytest.raises(InvalidTag):
            AESSIV(unhex(record, "Key")).decrypt(bytes(sealed), self.associated_data(record))

    def test_one_component_is_not_its_split(self) -> None:
        """The format passes its AAD as ONE component: splitting it changes V."""
        record = SIV[3]  # the AES-256-SIV (64-byte key) case: the format's parameters
        aad = unhex(record, "AAD")
        siv = AESSIV(unhex(record, "Key"))
        plaintext = unhex(record, "Plaintext")
        assert siv.encrypt(plaintext, [aad]) != siv.encrypt(plaintext, [aad[:8], aad[8:]])


class TestHkdf:
    """HKDF-SHA256 (RFC 5869 Appendix A.1 to A.3)."""

    @pytest.mark.parametrize("record", HKDF_SHA256, ids=lambda r: f"case{r['COUNT']}")
    def test_derive(self, record: Record) -> None:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=int(record["L"]),
            salt=unhex(record, "salt") or None,
            info=unhex(record, "info"),
        )
        assert unhex(record, "OKM") == hkdf.derive(unhex(record, "IKM"))

    @pytest.mark.parametrize("record", HKDF_SHA256, ids=lambda r: f"case{r['COUNT']}")
    def test_extract_then_expand(self, record: Record) -> None:
        """Extract by hand (HMAC with a zero salt when none is given), then expand."""
        salt = unhex(record, "salt") or bytes(32)
        prk = hmac.new(salt, unhex(record, "IKM"), hashlib.sha256).digest()
        assert unhex(record, "PRK") == prk
        expand = HKDFExpand(hashes.SHA256(), int(record["L"]), unhex(record, "info"))
        assert unhex(record, "OKM") == expand.derive(prk)

    def test_no_salt_is_the_rfc_default(self) -> None:
        """The format derives with ``salt=None``: RFC 5869 case 3 (empty salt) gives it."""
        record = HKDF_SHA256[2]
        assert "" == record["salt"]
        for salt in (None, b"", bytes(32)):
            hkdf = HKDF(algorithm=hashes.SHA256(), length=42, salt=salt, info=b"")
            assert unhex(record, "OKM") == hkdf.derive(unhex(record, "IKM")), salt


class TestHmacSha256:
    """HMAC-SHA256, the blind-index PRF (RFC 4231 test cases 1-4, 6, 7)."""

    @pytest.mark.parametrize("record", HMAC_SHA256, ids=lambda r: f"len{r['Len']}")
    def test_mac(self, record: Record) -> None:
        mac = hmac.new(unhex(record, "Key"), unhex(record, "Msg"), hashlib.sha256).digest()
        assert unhex(record, "MD") == mac
