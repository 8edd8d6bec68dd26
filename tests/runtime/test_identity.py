"""Request identity, the runtime side: keys on disk and the headers `RequestSigner` puts on a request."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key as ec_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption, Encoding, NoEncryption, PrivateFormat)

from pysdk._identity import IdentityError, IdentityVerifier, parse_public_key, public_key_string
from runtime.identity import (
    JWT_HEADER, SIGNATURE_SCHEME_HEADER, RequestSigner, generate_key, write_public_pem)

# restatedev/sdk-test-suite RequestSigningTest.kt: a Restate server's key and the public
# key string its deployments are given.
RESTATE_TEST_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHsQRVQ+AZX9/Yy1b0Zw+OA+bb7xDxGsAd5kB45jZhoc
-----END PRIVATE KEY-----
"""
RESTATE_TEST_PUBLIC = "publickeyv1_ChjENKeMvCtRnqG2mrBK1HmPKufgFUc98K8B3ononQvp"

PATH = "/stead.deployment.Deployment/Invoke"


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[str, str]:
    path = str(tmp_path / "identity.pem")
    return path, generate_key(path)


def test_restates_test_key_gives_restates_public_key_string(tmp_path: Path) -> None:
    pem = tmp_path / "restate.pem"
    pem.write_bytes(RESTATE_TEST_PRIVATE_PEM)
    signer = RequestSigner.from_pem_file(str(pem))
    assert signer.public_key_string() == RESTATE_TEST_PUBLIC
    IdentityVerifier([RESTATE_TEST_PUBLIC]).verify(PATH, dict(signer.headers(PATH)))


def test_generated_key_signs_what_its_public_key_verifies(key_file: tuple[str, str]) -> None:
    path, public = key_file
    signer = RequestSigner.from_pem_file(path)
    assert signer.public_key_string() == public
    assert public_key_string(parse_public_key(public)) == public
    headers = signer.headers(PATH)
    assert [name for name, _ in headers] == [SIGNATURE_SCHEME_HEADER, JWT_HEADER]
    assert SIGNATURE_SCHEME_HEADER == "x-restate-signature-scheme" and JWT_HEADER == "x-restate-jwt-v1"
    assert dict(headers)[SIGNATURE_SCHEME_HEADER] == "v1"
    IdentityVerifier([public]).verify(PATH, dict(headers))


def test_token_has_restates_shape(key_file: tuple[str, str]) -> None:
    path, public = key_file
    now = 1_800_000_000
    signer = RequestSigner.from_pem_file(path, clock=lambda: now)
    token = dict(signer.headers(PATH))[JWT_HEADER]
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "EdDSA", "kid": public}
    assert jwt.decode(token, options={"verify_signature": False}) == {
        "aud": PATH, "iat": now, "nbf": now - 60, "exp": now + 60}


def test_each_request_gets_a_fresh_token(key_file: tuple[str, str]) -> None:
    path, public = key_file
    clock = [1_800_000_000.0]
    signer = RequestSigner.from_pem_file(path, clock=lambda: clock[0])
    first = dict(signer.headers(PATH))
    clock[0] += 3600
    second = dict(signer.headers(PATH))
    assert first[JWT_HEADER] != second[JWT_HEADER]
    verifier = IdentityVerifier([public], clock=lambda: clock[0])
    verifier.verify(PATH, second)
    with pytest.raises(IdentityError, match="^expired token"):
        verifier.verify(PATH, first)
    # The audience is the path of this request.
    with pytest.raises(IdentityError, match="^audience mismatch"):
        verifier.verify("/stead.deployment.Deployment/Discover", second)


def test_a_signer_with_another_key_is_refused(key_file: tuple[str, str], tmp_path: Path) -> None:
    _, public = key_file
    other = str(tmp_path / "other.pem")
    generate_key(other)
    with pytest.raises(IdentityError, match="^bad signature"):
        IdentityVerifier([public]).verify(PATH, dict(RequestSigner.from_pem_file(other).headers(PATH)))


def test_generate_key_writes_a_private_pem_readable_only_by_its_owner(key_file: tuple[str, str]) -> None:
    path, _ = key_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Path(path).read_text().startswith("-----BEGIN PRIVATE KEY-----\n")


def test_generate_key_refuses_to_overwrite(key_file: tuple[str, str]) -> None:
    path, public = key_file
    before = Path(path).read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_key(path)
    assert Path(path).read_bytes() == before
    assert RequestSigner.from_pem_file(path).public_key_string() == public


def test_write_public_pem_gives_a_key_file_a_deployment_accepts(key_file: tuple[str, str], tmp_path: Path) -> None:
    path, public = key_file
    pub_path = str(tmp_path / "identity.pub.pem")
    assert write_public_pem(path, pub_path) == public
    assert Path(pub_path).read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    IdentityVerifier([pub_path]).verify(PATH, dict(RequestSigner.from_pem_file(path).headers(PATH)))
    with pytest.raises(FileExistsError):
        write_public_pem(path, pub_path)


def test_from_pem_file_refuses_anything_but_an_ed25519_pkcs8_key(tmp_path: Path, key_file: tuple[str, str]) -> None:
    def refused(name: str, data: bytes) -> str:
        f = tmp_path / name
        f.write_bytes(data)
        with pytest.raises(ValueError) as info:
            RequestSigner.from_pem_file(str(f))
        return str(info.value)

    ed = Ed25519PrivateKey.generate()
    assert "is encrypted" in refused("enc.pem", ed.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")))
    assert "not a PKCS8 PEM private key" in refused("ssh.pem", ed.private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    assert "not a PKCS8 PEM private key" in refused("keystring.pem", key_file[1].encode())
    assert "uses ed25519 keys" in refused("ec.pem", ec_key(SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    assert "cannot be loaded" in refused(
        "broken.pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="cannot be read"):
        RequestSigner.from_pem_file(str(tmp_path / "absent.pem"))
