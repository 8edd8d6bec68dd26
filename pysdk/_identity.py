"""Request identity, the deployment side: verify that a request was signed by the runtime.

Restate's scheme (request identity v1), followed as is:

* the runtime holds an ed25519 private key and signs every request it sends to a
  deployment with a fresh EdDSA JWT, in header ``x-restate-jwt-v1``, next to
  ``x-restate-signature-scheme: v1``;
* the JWT's header carries ``typ: JWT``, ``alg: EdDSA`` and, as ``kid``, the signing
  key's public key string; its claims are ``aud`` (the request path), ``iat`` (now),
  ``nbf`` (a minute before) and ``exp`` (a minute after);
* a public key is written ``publickeyv1_`` + base58 (Bitcoin alphabet) of the raw
  32-byte ed25519 public key, the form ``app(services, identity_keys=[...])`` takes.

A deployment started with identity keys refuses a request that is unsigned, signed
by another key, tampered with, outside its validity window, or meant for another
path. Keys and signatures are the ``cryptography`` library's, the JWT is PyJWT's.
This module is the deployment's; the signing half is ``runtime.identity``.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

SIGNATURE_SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"
SCHEME_V1 = "v1"
SCHEME_UNSIGNED = "unsigned"
PUBLIC_KEY_PREFIX = "publickeyv1_"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("aud", "exp", "iat", "nbf")
# Clock skew tolerated between runtime and deployment, on each side of the window.
LEEWAY_S = 5

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


class IdentityError(Exception):
    """A request that failed request-identity verification; the message says why."""


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); leading zero bytes become leading '1's."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """The inverse of `b58encode`; ValueError for a character outside the alphabet."""
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise ValueError(f"{c!r} is not a base58 character")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def public_key_string(key: Ed25519PublicKey) -> str:
    """The ``publickeyv1_<base58>`` form of an ed25519 public key."""
    return PUBLIC_KEY_PREFIX + b58encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """An ed25519 public key from ``publickeyv1_<base58>`` or the path of a PEM public key file.

    ValueError, naming the problem, for anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"an identity key is a str ('publickeyv1_...' or a PEM file path), got {type(text).__name__}")
    if text.startswith(PUBLIC_KEY_PREFIX):
        try:
            raw = b58decode(text[len(PUBLIC_KEY_PREFIX):])
        except ValueError as exc:
            raise ValueError(f"identity key {_shown(text)}: {exc}") from None
        if len(raw) != 32:
            raise ValueError(
                f"identity key {_shown(text)}: decodes to {len(raw)} bytes, an ed25519 public key is 32")
        return Ed25519PublicKey.from_public_bytes(raw)
    if not os.path.isfile(text):
        raise ValueError(
            f"identity key {_shown(text)} is neither a '{PUBLIC_KEY_PREFIX}...' string "
            "nor the path of a PEM public key file")
    with open(text, "rb") as f:
        data = f.read()
    if b"PRIVATE KEY-----" in data:
        raise ValueError(
            f"identity key file {text!r} holds a private key; a deployment is given the public key "
            "(the runtime keeps the private one)")
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"identity key file {text!r} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(
            f"identity key file {text!r} holds a {type(key).__name__}, request identity uses ed25519 keys")
    return key


class IdentityVerifier:
    """Checks a request's identity headers against the keys a deployment was started with.

    Any one of the keys is accepted, so a runtime's key can be rotated by listing the
    old and the new key for a while. ``clock`` (seconds since the epoch) is for tests.
    """

    __slots__ = ("_keys", "_clock")

    def __init__(self, keys: Sequence[str], *, clock: Callable[[], float] = time.time) -> None:
        if isinstance(keys, str):
            raise TypeError("IdentityVerifier takes a list of keys, not one string: IdentityVerifier([key])")
        parsed = [(k, parse_public_key(k)) for k in keys]
        if not parsed:
            raise ValueError("IdentityVerifier needs at least one identity key")
        # Stored by their publickeyv1 form so a token's kid can pick its key first.
        self._keys: tuple[tuple[str, Ed25519PublicKey], ...] = tuple(
            (public_key_string(key), key) for _, key in parsed)
        self._clock = clock

    @property
    def key_strings(self) -> tuple[str, ...]:
        """The configured keys, each in its ``publickeyv1_`` form."""
        return tuple(s for s, _ in self._keys)

    def verify(self, path: str, headers: Mapping[str, str]) -> None:
        """Return if ``headers`` (lowercase names) carry a valid identity for ``path``, else raise IdentityError."""
        scheme = headers.get(SIGNATURE_SCHEME_HEADER)
        if scheme is None:
            raise IdentityError(f"missing header {SIGNATURE_SCHEME_HEADER}: the request is not signed")
        if scheme == SCHEME_UNSIGNED:
            raise IdentityError(
                f"unsigned request ({SIGNATURE_SCHEME_HEADER}: {SCHEME_UNSIGNED}); this deployment "
                "accepts only requests signed with one of its identity keys")
        if scheme != SCHEME_V1:
            raise IdentityError(
                f"unknown signature scheme {scheme!r} in header {SIGNATURE_SCHEME_HEADER}, expected {SCHEME_V1!r}")
        token = headers.get(JWT_HEADER)
        if token is None:
            raise IdentityError(f"missing header {JWT_HEADER}")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise IdentityError(f"malformed token in {JWT_HEADER}: {exc}") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise IdentityError(f"token algorithm {alg!r}, expected {ALGORITHM!r}")
        kid = header.get("kid")
        keys = sorted(self._keys, key=lambda entry: entry[0] != kid)
        for _, key in keys:
            if self._verify_with(key, token, path):
                return
        signer = f" (token's kid: {kid})" if isinstance(kid, str) else ""
        raise IdentityError(
            f"bad signature: the token is not signed by any of the {len(self._keys)} configured "
            f"identity key(s){signer}")

    def _verify_with(self, key: Ed25519PublicKey, token: str, path: str) -> bool:
        """False if the signature is not ``key``'s; True if it is and the claims hold; else raise."""
        now = self._clock()
        try:
            # PyJWT checks the signature before any claim, so a claim error below means
            # the token was signed by this key.
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=path, leeway=LEEWAY_S,
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False})
        except jwt.InvalidSignatureError:
            return False
        except jwt.MissingRequiredClaimError as exc:
            raise IdentityError(f"token lacks the required claim {exc.claim!r}") from None
        except jwt.InvalidAudienceError:
            aud = _unverified_claims(token).get("aud")
            raise IdentityError(f"audience mismatch: the token is for {aud!r}, the request path is {path!r}") from None
        except jwt.DecodeError as exc:
            raise IdentityError(f"malformed token in {JWT_HEADER}: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise IdentityError(f"invalid token: {exc}") from None
        # The signature holds; the time window is checked here against the injectable clock.
        # As Restate's verifiers do, the window is [nbf, exp]: iat must be a number but is not
        # compared with now, so a runtime clock ahead by less than nbf's minute is tolerated.
        exp, nbf, _ = (_numeric(claims, name) for name in ("exp", "nbf", "iat"))
        if exp <= now - LEEWAY_S:
            raise IdentityError(f"expired token: exp {exp:.0f} is {now - exp:.0f}s in the past (leeway {LEEWAY_S}s)")
        if nbf > now + LEEWAY_S:
            raise IdentityError(f"token not yet valid: nbf {nbf:.0f} is {nbf - now:.0f}s in the future "
                                f"(leeway {LEEWAY_S}s)")
        return True

    def __repr__(self) -> str:
        return f"IdentityVerifier({list(self.key_strings)})"


def _unverified_claims(token: str) -> dict[str, Any]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims if isinstance(claims, dict) else {}


def _numeric(claims: dict[str, Any], name: str) -> float:
    value: Optional[object] = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise IdentityError(f"token claim {name!r} is not a number: {value!r}")
    return float(value)
