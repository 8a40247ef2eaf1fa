"""Model-record signatures without Kafka: the key's life, what verifies and what is refused."""

import os
import stat
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tideline import signing
from tideline.settings import Settings

KEY, VALUE = b"fraud:3", b"\xc3\x01 an encoded ModelUpdated"


def _settings(home: Path, **changes: object) -> Settings:
    return Settings(home=home).model_copy(update=changes)


def test_the_key_is_made_once_readable_by_its_user_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = signing.signer(settings)
    again = signing.signer(settings)
    assert signing.encoded(first.key.public_key()) == signing.encoded(again.key.public_key())
    private = signing.private_key_path(settings)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    public = signing.public_key_path(settings).read_text().strip()
    assert public == signing.encoded(first.key.public_key())


def _public_key(home: str) -> str:
    return signing.encoded(signing.signer(Settings(home=Path(home))).key.public_key())


def test_registries_starting_at_once_end_with_one_key(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        keys = set(pool.map(_public_key, [str(tmp_path)] * 8))
    assert len(keys) == 1
    # and no partial file is left behind
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["models.ed25519", "models.pub"]


def test_a_signed_record_verifies_from_the_file_the_setting_or_pem(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    signer = signing.signer(settings)
    headers = [signer.header(KEY, VALUE)]
    public = signer.key.public_key()
    signing.Verifier(settings).verify(KEY, VALUE, headers)
    elsewhere = _settings(tmp_path / "other", models_public_key=signing.encoded(public))
    signing.Verifier(elsewhere).verify(KEY, VALUE, headers)
    as_pem = _settings(tmp_path / "other", models_public_key=signing.pem(public))
    signing.Verifier(as_pem).verify(KEY, VALUE, headers)
    (tmp_path / "given.pem").write_text(signing.pem(public))
    from_file = _settings(tmp_path / "other", models_public_key_file=tmp_path / "given.pem")
    signing.Verifier(from_file).verify(KEY, VALUE, headers)


def test_openssl_verifies_what_the_registry_signs(tmp_path: Path) -> None:
    """The signed message is documented byte for byte: another language checks it so."""
    signer = signing.signer(_settings(tmp_path))
    (tmp_path / "pub.pem").write_text(signing.pem(signer.key.public_key()))
    (tmp_path / "message").write_bytes(signing.message(KEY, VALUE))
    (tmp_path / "signature").write_bytes(signer.header(KEY, VALUE)[1])
    done = subprocess.run(
        [
            *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin"),
            *("-in", "message", "-sigfile", "signature"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done
    assert "Signature Verified Successfully" in done.stdout


@pytest.mark.parametrize(
    ("key", "value", "headers", "reason"),
    [
        (KEY, VALUE, [], "unsigned"),
        (KEY, None, [], "unsigned"),
        (KEY, VALUE, [("other", b"x")], "unsigned"),
        (KEY, VALUE + b"!", "genuine", "bad_signature"),  # a changed value
        (b"fraud:4", VALUE, "genuine", "bad_signature"),  # the same value under another key
        (KEY, VALUE, "stranger", "bad_signature"),  # signed, by another key
        (KEY, VALUE, [(signing.HEADER, b"\x00" * 64)], "bad_signature"),
        (KEY, VALUE, [(signing.HEADER, b"short")], "bad_signature"),
    ],
)
def test_what_is_refused(
    tmp_path: Path,
    key: bytes,
    value: bytes | None,
    headers: object,
    reason: str,
) -> None:
    settings = _settings(tmp_path)
    signer = signing.signer(settings)
    if headers == "genuine":
        headers = [signer.header(KEY, VALUE)]
    elif headers == "stranger":
        headers = [signing.Signer(Ed25519PrivateKey.generate()).header(KEY, VALUE)]
    with pytest.raises(signing.SignatureError) as refused:
        signing.Verifier(settings).verify(key, value, headers)  # type: ignore[arg-type]
    assert refused.value.reason == reason


def test_without_a_key_a_reader_refuses_then_takes_the_key_once_it_exists(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    verifier = signing.Verifier(settings)  # started before the registry ever ran
    stranger = signing.Signer(Ed25519PrivateKey.generate())
    with pytest.raises(signing.SignatureError, match="no_public_key"):
        verifier.verify(KEY, VALUE, [stranger.header(KEY, VALUE)])
    signer = signing.signer(settings)
    verifier.verify(KEY, VALUE, [signer.header(KEY, VALUE)])


@pytest.mark.parametrize(
    "text",
    ["", "not base64!", "AAAA", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"],
)
def test_a_key_setting_that_is_no_key_is_refused_with_its_reason(text: str) -> None:
    with pytest.raises(signing.SignatureError, match="bad_key: not an Ed25519 public key"):
        signing.decoded(text)


def test_a_signing_key_file_that_is_no_key_stops_the_registry(tmp_path: Path) -> None:
    path = tmp_path / "models.ed25519"
    path.write_text("garbage")
    os.chmod(path, 0o600)
    with pytest.raises(signing.SignatureError, match="is not a PEM private key"):
        signing.signer(_settings(tmp_path, models_signing_key=path))
