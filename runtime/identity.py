"""Request identity, the runtime side: sign every request sent to a deployment.

Restate's request identity v1 (see `pysdk._identity`, which verifies): an ed25519
private key, kept by the runtime as a PKCS8 PEM file, signs one fresh EdDSA JWT per
request, valid from a minute before to a minute after its issue, whose audience is
the request path. A deployment is given the matching public key, written
``publickeyv1_<base58>``, which `RequestSigner.public_key_string` and `generate_key`
print.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding, NoEncryption, PrivateFormat, PublicFormat, load_pem_private_key)

from pysdk._identity import (
    ALGORITHM, JWT_HEADER, SCHEME_V1, SIGNATURE_SCHEME_HEADER, public_key_string)

__all__ = ["RequestSigner", "generate_key", "write_public_pem", "JWT_HEADER", "SIGNATURE_SCHEME_HEADER"]

# Restate's window: nbf a minute before iat, exp a minute after.
VALIDITY_S = 60
_PKCS8_BEGIN = b"-----BEGIN PRIVATE KEY-----"


class RequestSigner:
    """Signs requests with one ed25519 private key. ``clock`` (seconds since the epoch) is for tests."""

    __slots__ = ("_key", "_kid", "_clock", "_validity_s")

    def __init__(self, private_key: Ed25519PrivateKey, *, clock: Callable[[], float] = time.time,
                 validity_s: int = VALIDITY_S) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError(f"RequestSigner takes an Ed25519PrivateKey, got {type(private_key).__name__}")
        self._key = private_key
        self._kid = public_key_string(private_key.public_key())
        self._clock = clock
        self._validity_s = validity_s

    @classmethod
    def from_pem_file(cls, path: str, *, clock: Callable[[], float] = time.time,
                      validity_s: int = VALIDITY_S) -> "RequestSigner":
        """The signer of an unencrypted PKCS8 PEM ed25519 private key file; ValueError for anything else."""
        return cls(_load_private_key(path), clock=clock, validity_s=validity_s)

    def public_key_string(self) -> str:
        """The ``publickeyv1_...`` form of the public key, what a deployment is given."""
        return self._kid

    def headers(self, path: str) -> list[tuple[str, str]]:
        """The two identity headers of one request to ``path``, with a freshly signed token."""
        now = int(self._clock())
        claims = {"aud": path, "iat": now, "nbf": now - self._validity_s, "exp": now + self._validity_s}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": "JWT", "kid": self._kid})
        return [(SIGNATURE_SCHEME_HEADER, SCHEME_V1), (JWT_HEADER, token)]

    def __repr__(self) -> str:
        return f"RequestSigner({self._kid})"


def _load_private_key(path: str) -> Ed25519PrivateKey:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"request identity key {path!r} cannot be read: {exc.strerror or exc}") from None
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        raise ValueError(f"request identity key {path!r} is encrypted; give an unencrypted PKCS8 PEM key")
    if _PKCS8_BEGIN not in data:
        raise ValueError(
            f"request identity key {path!r} is not a PKCS8 PEM private key (no '{_PKCS8_BEGIN.decode()}' "
            "line); make one with `openssl genpkey -algorithm ed25519` or generate_key()")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"request identity key {path!r} cannot be loaded: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(
            f"request identity key {path!r} is a {type(key).__name__}; request identity uses ed25519 keys")
    return key


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data``; FileExistsError if it exists (never overwrites)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; refusing to overwrite a key file") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(path)
        raise


def generate_key(path: str) -> str:
    """Write a new ed25519 private key to ``path`` (PKCS8 PEM, mode 0600) and return its public key string.

    Refuses (FileExistsError) if ``path`` exists.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    _write_new(path, pem, 0o600)
    return public_key_string(key.public_key())


def write_public_pem(private_path: str, public_path: str) -> str:
    """Write the public key of the private key at ``private_path`` to ``public_path`` (PEM, never overwriting).

    Returns the public key string. The PEM file is another form a deployment accepts.
    """
    public = _load_private_key(private_path).public_key()
    _write_new(public_path, public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo), 0o644)
    return public_key_string(public)
