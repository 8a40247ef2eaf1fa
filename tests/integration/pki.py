"""A throwaway certificate authority, made with openssl, for the secured-transport tests."""

import subprocess
from pathlib import Path

KEYSTORE_PASSWORD = "broker-keystore"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificate(name: str, cwd: Path, *extension: str) -> None:
    """`name`.key and `name`.pem, signed by the CA in `cwd`."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extension, cwd=cwd)  # fmt: skip


def make(cwd: Path) -> Path:
    """In `cwd`: ca.pem; server.pem/.key for localhost, also as server.p12 (Java's
    keystore, KEYSTORE_PASSWORD); client.pem/.key for mutual TLS. Returns `cwd`."""
    cwd.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=test-ca", cwd=cwd)  # fmt: skip
    (cwd / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _certificate("server", cwd, "-extfile", "san.ext")
    _certificate("client", cwd)
    _openssl("pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key",
             "-out", "server.p12", "-passout", f"pass:{KEYSTORE_PASSWORD}", cwd=cwd)  # fmt: skip
    return cwd
