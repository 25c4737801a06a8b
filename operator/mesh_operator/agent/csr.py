"""Key + CSR, in a short-lived child process (``python -m mesh_operator.agent csr``): loading ``cryptography``
costs ~7 MB that the long-running agent should not keep. The key goes straight to an owner-only file; only the
CSR (public) comes back on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def make(identity: str, key_path: Path) -> str:
    """Generate an EC P-256 key into ``key_path`` (0600) and return a CSR carrying ``identity`` as its URI SAN."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def in_child(identity: str, key_path: Path, timeout: float = 30.0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mesh_operator.agent", "csr", "--identity", identity, "--key-out", str(key_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"making the CSR failed: {done.stderr.strip()}")
    return done.stdout
