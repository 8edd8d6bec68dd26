"""Request identity, the deployment side: what `IdentityVerifier` accepts and refuses, and why."""
from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding, NoEncryption, PrivateFormat, PublicFormat, load_pem_private_key)

import pysdk
from pysdk._app import App, app
from pysdk._identity import (
    JWT_HEADER, SIGNATURE_SCHEME_HEADER, IdentityError, IdentityVerifier, b58decode, b58encode,
    parse_public_key, public_key_string)

# Known vectors from Restate's own sources. restatedev/sdk-test-suite RequestSigningTest.kt
# runs a server with this private key and gives the deployment this public key string:
RESTATE_TEST_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHsQRVQ+AZX9/Yy1b0Zw+OA+bb7xDxGsAd5kB45jZhoc
-----END PRIVATE KEY-----
"""
RESTATE_TEST_PUBLIC = "publickeyv1_ChjENKeMvCtRnqG2mrBK1HmPKufgFUc98K8B3ononQvp"
# restatedev/sdk-shared-core src/request_identity.rs (test bad_key): a token a Restate
# server signed for /invoke/foo, with the key named in its kid.
RESTATE_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxX0FmUXdtd2ZnRVpocldwdnY4TjUyU0hwUnRacUdHYUZy"
    "NEFaTjZxdFlXU2lZIn0.eyJhdWQiOiIvaW52b2tlL2ZvbyIsImV4cCI6MTcyMTY2MjcwOSwiaWF0IjoxNzIxNjYyNjQ5LCJuYmYiOjE3"
    "MjE2NjI1ODl9.UBReG_9cdFQ5VcaJxAV0rM8U_zaNw9kMXJZt691SiI0SWw7Ucmz5Zz3wtmVUc1jrkNsnTDhNEvOFGEZoKXTMCQ")
RESTATE_TOKEN_KEY = "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"
RESTATE_TOKEN_IAT = 1721662649

PATH = "/stead.deployment.Deployment/Invoke"


def _sign(key: Ed25519PrivateKey, path: str = PATH, *, now: float | None = None,
          without: str = "") -> dict[str, str]:
    """Identity headers as Restate's server makes them (built here independently of runtime.identity)."""
    t = int(time.time() if now is None else now)
    claims: dict[str, object] = {"aud": path, "iat": t, "nbf": t - 60, "exp": t + 60}
    claims.pop(without, None)
    kid = public_key_string(key.public_key())
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": "JWT", "kid": kid})
    return {SIGNATURE_SCHEME_HEADER: "v1", JWT_HEADER: token}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(key: Ed25519PrivateKey) -> IdentityVerifier:
    return IdentityVerifier([public_key_string(key.public_key())])


def _refused(verifier: IdentityVerifier, headers: dict[str, str], path: str = PATH) -> str:
    with pytest.raises(IdentityError) as info:
        verifier.verify(path, headers)
    return str(info.value)


# -- keys ----------------------------------------------------------------------------------------

def test_publickeyv1_form_matches_restates_test_key() -> None:
    private = load_pem_private_key(RESTATE_TEST_PRIVATE_PEM, None)
    assert isinstance(private, Ed25519PrivateKey)
    assert public_key_string(private.public_key()) == RESTATE_TEST_PUBLIC
    parsed = parse_public_key(RESTATE_TEST_PUBLIC)
    assert parsed.public_bytes(Encoding.Raw, PublicFormat.Raw) == private.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def test_base58_round_trips_including_leading_zeros() -> None:
    for data in (b"", b"\0", b"\0\0\x01", bytes(range(32)), b"\xff" * 32, b"\0" * 31 + b"\x07"):
        assert b58decode(b58encode(data)) == data
    assert b58encode(b"\0\0\x01") == "112"
    with pytest.raises(ValueError, match="not a base58 character"):
        b58decode("0OIl")


def test_public_key_string_round_trips(key: Ed25519PrivateKey) -> None:
    text = public_key_string(key.public_key())
    assert text.startswith("publickeyv1_")
    assert public_key_string(parse_public_key(text)) == text


def test_pem_public_key_file_loads_as_the_same_key(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    pem = tmp_path / "id.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    assert public_key_string(parse_public_key(str(pem))) == public_key_string(key.public_key())
    # Either form configures a verifier that accepts the key's signatures.
    IdentityVerifier([str(pem)]).verify(PATH, _sign(key))


@pytest.mark.parametrize("text, reason", [
    ("garbage", "neither a 'publickeyv1_...' string nor the path"),
    ("publickeyv1_0OIl", "not a base58 character"),
    ("publickeyv1_abc", "decodes to 3 bytes, an ed25519 public key is 32"),
    ("publickeyv2_ChjENKeMvCtRnqG2mrBK1HmPKufgFUc98K8B3ononQvp", "neither"),
])
def test_bad_key_strings_are_refused_clearly(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_public_key(text)


def test_pem_files_of_the_wrong_kind_are_refused_clearly(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    private = tmp_path / "private.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(ValueError, match="holds a private key"):
        parse_public_key(str(private))
    rsa = tmp_path / "rsa.pub.pem"
    rsa.write_bytes(generate_private_key(65537, 2048).public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ValueError, match="uses ed25519 keys"):
        parse_public_key(str(rsa))
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ValueError, match="is not a PEM public key"):
        parse_public_key(str(junk))


def test_verifier_needs_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least one"):
        IdentityVerifier([])
    with pytest.raises(TypeError, match="list of keys"):
        IdentityVerifier(RESTATE_TEST_PUBLIC)


# -- verification --------------------------------------------------------------------------------

def test_a_signed_request_verifies(key: Ed25519PrivateKey, verifier: IdentityVerifier) -> None:
    verifier.verify(PATH, _sign(key))


def test_a_token_signed_by_a_restate_server_verifies() -> None:
    """Interop: Restate's own token (and base58 key) verify here, at the time it was valid."""
    headers = {SIGNATURE_SCHEME_HEADER: "v1", JWT_HEADER: RESTATE_TOKEN}
    IdentityVerifier([RESTATE_TOKEN_KEY], clock=lambda: RESTATE_TOKEN_IAT).verify("/invoke/foo", headers)
    # ... and not with the other Restate test key, nor long after its exp.
    assert "bad signature" in _refused(
        IdentityVerifier([RESTATE_TEST_PUBLIC], clock=lambda: RESTATE_TOKEN_IAT), headers, "/invoke/foo")
    assert "expired" in _refused(IdentityVerifier([RESTATE_TOKEN_KEY]), headers, "/invoke/foo")


def test_any_configured_key_is_accepted(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    both = IdentityVerifier([public_key_string(other.public_key()), public_key_string(key.public_key())])
    both.verify(PATH, _sign(key))
    both.verify(PATH, _sign(other))
    # The kid only orders the tries: a token whose kid names another key still verifies.
    headers = _sign(key)
    token = headers[JWT_HEADER]
    payload = jwt.decode(token, options={"verify_signature": False})
    relabelled = jwt.encode(payload, key, algorithm="EdDSA",
                            headers={"kid": public_key_string(other.public_key())})
    both.verify(PATH, {**headers, JWT_HEADER: relabelled})


def test_unsigned_requests_are_refused(verifier: IdentityVerifier) -> None:
    assert _refused(verifier, {}) == "missing header x-restate-signature-scheme: the request is not signed"
    assert "unsigned request" in _refused(verifier, {SIGNATURE_SCHEME_HEADER: "unsigned"})
    assert "missing header x-restate-jwt-v1" in _refused(verifier, {SIGNATURE_SCHEME_HEADER: "v1"})


def test_an_unknown_scheme_is_refused(key: Ed25519PrivateKey, verifier: IdentityVerifier) -> None:
    message = _refused(verifier, {**_sign(key), SIGNATURE_SCHEME_HEADER: "v2"})
    assert message.startswith("unknown signature scheme 'v2'")


def test_a_wrong_key_is_refused(verifier: IdentityVerifier) -> None:
    stranger = Ed25519PrivateKey.generate()
    message = _refused(verifier, _sign(stranger))
    assert message.startswith("bad signature")
    assert public_key_string(stranger.public_key()) in message


def test_a_tampered_token_is_refused(key: Ed25519PrivateKey, verifier: IdentityVerifier) -> None:
    headers = _sign(key)
    head, payload, signature = headers[JWT_HEADER].split(".")
    # The claims of another path, under the original signature.
    forged = jwt.utils.base64url_encode(jwt.utils.base64url_decode(payload).replace(
        PATH.encode(), b"/stead.deployment.Deployment/Other")).decode()
    assert forged != payload
    message = _refused(verifier, {**headers, JWT_HEADER: f"{head}.{forged}.{signature}"},
                       "/stead.deployment.Deployment/Other")
    assert message.startswith("bad signature")
    # A flipped signature byte.
    sig = bytearray(jwt.utils.base64url_decode(signature))
    sig[0] ^= 1
    flipped = jwt.utils.base64url_encode(bytes(sig)).decode()
    assert _refused(verifier, {**headers, JWT_HEADER: f"{head}.{payload}.{flipped}"}).startswith("bad signature")
    assert _refused(verifier, {**headers, JWT_HEADER: "not.a-jwt"}).startswith("malformed token")


def test_another_algorithm_is_refused(verifier: IdentityVerifier) -> None:
    token = jwt.encode({"aud": PATH}, "secret" * 6, algorithm="HS256")
    message = _refused(verifier, {SIGNATURE_SCHEME_HEADER: "v1", JWT_HEADER: token})
    assert message == "token algorithm 'HS256', expected 'EdDSA'"


def test_an_expired_token_is_refused(key: Ed25519PrivateKey, verifier: IdentityVerifier) -> None:
    message = _refused(verifier, _sign(key, now=time.time() - 120))
    assert message.startswith("expired token")


def test_clock_leeway_is_a_few_seconds(key: Ed25519PrivateKey) -> None:
    now = 1_800_000_000
    headers = _sign(key, now=now)   # exp = now + 60
    pub = public_key_string(key.public_key())
    IdentityVerifier([pub], clock=lambda: now + 63).verify(PATH, headers)
    assert "expired" in _refused(IdentityVerifier([pub], clock=lambda: now + 66), headers)
    # A runtime whose clock runs ahead: as with Restate, nbf (a minute before iat) decides.
    IdentityVerifier([pub], clock=lambda: now - 30).verify(PATH, headers)
    IdentityVerifier([pub], clock=lambda: now - 63).verify(PATH, headers)
    assert "not yet valid" in _refused(IdentityVerifier([pub], clock=lambda: now - 66), headers)


def test_a_token_for_another_path_is_refused(key: Ed25519PrivateKey, verifier: IdentityVerifier) -> None:
    message = _refused(verifier, _sign(key, "/stead.deployment.Deployment/Discover"))
    assert message == (f"audience mismatch: the token is for '/stead.deployment.Deployment/Discover', "
                       f"the request path is {PATH!r}")


@pytest.mark.parametrize("claim", ["aud", "exp", "iat", "nbf"])
def test_every_claim_is_required(key: Ed25519PrivateKey, verifier: IdentityVerifier, claim: str) -> None:
    message = _refused(verifier, _sign(key, without=claim))
    assert message == f"token lacks the required claim {claim!r}"


# -- app(..., identity_keys=...) -------------------------------------------------------------------

def test_app_takes_identity_keys_like_restate(key: Ed25519PrivateKey, tmp_path: Path) -> None:
    greeter = pysdk.Service("greeter")
    assert app([greeter]).identity_keys == ()
    pem = tmp_path / "id.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    keys = [RESTATE_TEST_PUBLIC, str(pem)]
    made = app([greeter], identity_keys=keys)
    assert made.identity_keys == tuple(keys)
    IdentityVerifier(made.identity_keys).verify(PATH, _sign(key))
    assert App([greeter], keys).identity_keys == tuple(keys)


def test_app_refuses_a_bad_identity_key_at_construction() -> None:
    greeter = pysdk.Service("greeter")
    with pytest.raises(ValueError, match="'garbage' is neither"):
        app([greeter], identity_keys=["garbage"])
    with pytest.raises(TypeError, match="list of keys"):
        app([greeter], identity_keys=RESTATE_TEST_PUBLIC)  # type: ignore[arg-type]
