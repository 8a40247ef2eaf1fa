"""Signed model records: proof that a `models.updated` record came from the registry.

Whoever can write to the broker could otherwise announce a champion of their own. The
registry signs every record it writes (Ed25519, in the record's `tideline-signature`
header) over exactly the bytes it wrote, key and value: the value names the version,
its state and aliases and the artifact's sha256, so one signature covers the model
bytes too. Signing the bytes as written, not a re-encoding, keeps the check exact for
readers on another schema version and for clients in any language:

    message = b"tideline.ModelUpdated\\0" + len(key) as 4 bytes big-endian + key + value

The private key is generated at the registry's first start (`models_signing_key`,
readable by the user only); readers take the public key from a setting, a file, or the
file beside the private key, which is what processes of one stack home share.
"""

import base64
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tideline.errors import TidelineError
from tideline.settings import Settings

HEADER = "tideline-signature"
DOMAIN = b"tideline.ModelUpdated\0"  # a signature made for another purpose never fits


class SignatureError(TidelineError):
    """A record that is unsigned, wrongly signed, or that cannot be checked yet."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def message(key: bytes | None, value: bytes) -> bytes:
    """What is signed: the record's key and value, length-delimited, after the domain."""
    key = key or b""
    return DOMAIN + len(key).to_bytes(4, "big") + key + value


def private_key_path(settings: Settings) -> Path:
    return settings.models_signing_key or settings.home / "keys" / "models.ed25519"


def public_key_path(settings: Settings) -> Path:
    if settings.models_public_key_file is not None:
        return settings.models_public_key_file
    return private_key_path(settings).with_suffix(".pub")


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey

    def header(self, key: bytes | None, value: bytes) -> tuple[str, bytes]:
        return HEADER, self.key.sign(message(key, value))


def signer(settings: Settings) -> Signer:
    """The registry's signing key: read, or made on first use with its public key beside it.
    Made with O_EXCL, so two registries starting at once end up with the same key."""
    path = private_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        made = Ed25519PrivateKey.generate()
        pem = made.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # another process may have made it first: then its key is the one
        with contextlib.suppress(FileExistsError):
            _write_new(path, pem, mode=0o600)
    try:
        found = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError("bad_key", f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(found, Ed25519PrivateKey):
        raise SignatureError("bad_key", f"{path} holds a {type(found).__name__}, not Ed25519")
    public = public_key_path(settings)
    if settings.models_public_key_file is None and not public.exists():
        with contextlib.suppress(FileExistsError):
            _write_new(public, encoded(found.public_key()).encode() + b"\n", mode=0o644)
    return Signer(found)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write `path` whole or not at all; FileExistsError if it is there already."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    try:
        os.link(partial, path)  # fails if it exists, unlike rename
    finally:
        partial.unlink()


def encoded(key: Ed25519PublicKey) -> str:
    """A public key on one line: base64 of its 32 raw bytes, as settings take it."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def pem(key: Ed25519PublicKey) -> str:
    """The same key as a PEM SubjectPublicKeyInfo, for openssl and Java."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def decoded(text: str) -> Ed25519PublicKey:
    """A public key from its one-line base64 form or from PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            found = serialization.load_pem_public_key(text.encode())
            if not isinstance(found, Ed25519PublicKey):
                raise ValueError(f"a {type(found).__name__}, not an Ed25519 key")
            return found
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:  # binascii.Error is one
        raise SignatureError("bad_key", f"not an Ed25519 public key: {exc}") from exc


class Verifier:
    """Checks records against the registry's public key. Without a key set, it reads the
    key file when a record first needs it: a reader may start before the registry has
    ever made its key, and no genuine record exists before then."""

    def __init__(self, settings: Settings) -> None:
        self.path = public_key_path(settings)
        configured = settings.models_public_key
        self._key = None if configured is None else decoded(configured)

    def key(self) -> Ed25519PublicKey:
        if self._key is None:
            try:
                text = self.path.read_text()
            except OSError as exc:
                raise SignatureError(
                    "no_public_key",
                    f"the registry's public key is not set and {self.path} cannot be read: {exc}",
                ) from exc
            self._key = decoded(text)
        return self._key

    def verify(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        signature = dict(headers).get(HEADER)
        if signature is None or value is None:  # a tombstone is nobody's record
            raise SignatureError("unsigned", f"no {HEADER} header")
        try:
            self.key().verify(signature, message(key, value))
        except InvalidSignature:
            raise SignatureError("bad_signature", "not signed by the registry's key") from None
