"""CA material on disk: the only module of ``xds_server.ca`` that does file I/O.

Layout of a CA directory (names as Istio's "plugged-in" CA files, so users can reuse theirs)::

    <dir>/            0700 when we create it
      ca-cert.pem     the issuer certificate (0644)
      ca-key.pem      its private key, unencrypted PKCS#8 (0600; refused if group/others have any access)
      cert-chain.pem  optional: the certificates above the issuer, ending with the root
      rotation.json   optional: a root rotation in progress

Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the directory); creation of a
new root is serialised with an advisory lock so two processes never write two different roots. Key bytes are
never logged; log lines name serials and fingerprints only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from xds_server.ca.authority import create_root, issuer_from_pem
from xds_server.ca.bundle import fingerprint
from xds_server.ca.clock import Clock, system_clock
from xds_server.ca.issuer import IssuancePolicy, Issuer, certificate_pem
from xds_server.ca.keys import KeyAlgorithm, private_key_pem
from xds_server.ca.rotation import RootRotation
from xds_server.errors import InsecureKeyFile, InvalidCaMaterial, RotationError

__all__ = [
    "CERT_FILE",
    "CHAIN_FILE",
    "KEY_FILE",
    "ROTATION_FILE",
    "load_issuer",
    "load_issuer_files",
    "load_or_create",
    "load_rotation",
    "read_key_file",
    "save_issuer",
    "save_rotation",
]

log = logging.getLogger(__name__)

CERT_FILE = "ca-cert.pem"
KEY_FILE = "ca-key.pem"
CHAIN_FILE = "cert-chain.pem"
ROTATION_FILE = "rotation.json"
_LOCK_FILE = ".ca.lock"
_MAX_FILE_BYTES = 1024 * 1024


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a private key file, refusing one that group or others can access (`InsecureKeyFile`)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InvalidCaMaterial(f"CA key file {path} does not exist") from None
    except OSError as exc:
        raise InvalidCaMaterial(f"cannot open CA key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())  # the file we opened, not whatever the path points at now
        if not stat.S_ISREG(st.st_mode):
            raise InvalidCaMaterial(f"CA key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise InsecureKeyFile(
                f"refusing to load CA key file {path}: its mode is {stat.S_IMODE(st.st_mode):04o}, so group or "
                f"others can access it; run `chmod 600 {path}` (for a Kubernetes Secret volume set defaultMode: 0400)"
            )
        return handle.read(_MAX_FILE_BYTES + 1)


def _read_public(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidCaMaterial(f"cannot read {path}: {exc.strerror}") from None


def load_issuer_files(
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    chain_path: str | os.PathLike[str] | None = None,
    *,
    trust_domain: str,
    policy: IssuancePolicy | None = None,
    clock: Clock = system_clock,
) -> Issuer:
    """A user-supplied root or intermediate (cert + key PEM files, optional chain), checked before use."""
    cert_pem = _read_public(Path(cert_path))
    chain_pem = _read_public(Path(chain_path)) if chain_path is not None else None
    key_pem = read_key_file(key_path)
    issuer = issuer_from_pem(cert_pem, key_pem, chain_pem, trust_domain=trust_domain, policy=policy, clock=clock)
    log.info(
        "loaded CA %s (serial %x, root fingerprint %s) from %s",
        issuer.certificate.subject.rfc4514_string(),
        issuer.certificate.serial_number,
        fingerprint(issuer.root)[:16],
        cert_path,
    )
    return issuer


def load_issuer(
    directory: str | os.PathLike[str],
    trust_domain: str,
    *,
    policy: IssuancePolicy | None = None,
    clock: Clock = system_clock,
) -> Issuer:
    """The CA saved in ``directory`` (see the module docstring for the layout)."""
    directory = Path(directory)
    chain = directory / CHAIN_FILE
    return load_issuer_files(
        directory / CERT_FILE,
        directory / KEY_FILE,
        chain if chain.exists() else None,
        trust_domain=trust_domain,
        policy=policy,
        clock=clock,
    )


def load_or_create(
    directory: str | os.PathLike[str],
    trust_domain: str,
    *,
    now: datetime | None = None,
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    policy: IssuancePolicy | None = None,
    clock: Clock = system_clock,
) -> Issuer:
    """Load the CA in ``directory``, or create a self-signed root there on first start."""
    directory = Path(directory)
    _ensure_private_directory(directory)
    with _locked(directory):
        cert, key = directory / CERT_FILE, directory / KEY_FILE
        if cert.exists() and not key.exists():
            raise InvalidCaMaterial(f"{cert} exists but its key {key} does not; refusing to replace the CA")
        if cert.exists():
            return load_issuer(directory, trust_domain, policy=policy, clock=clock)
        if key.exists():
            # A key without its certificate: an earlier creation stopped half-way. Nothing can have used it.
            log.warning("found %s without %s (interrupted creation?); creating a new root", key, cert)
        issuer = create_root(trust_domain, now=now, key_algorithm=key_algorithm, policy=policy, clock=clock)
        save_issuer(directory, issuer)
        log.info(
            "created root CA %s for trust domain %s (serial %x, fingerprint %s, not after %s) in %s",
            issuer.certificate.subject.rfc4514_string(),
            trust_domain,
            issuer.certificate.serial_number,
            fingerprint(issuer.root)[:16],
            issuer.not_after.isoformat(),
            directory,
        )
        return issuer


def save_issuer(directory: str | os.PathLike[str], issuer: Issuer) -> None:
    """Write the issuer's key (0600), chain and certificate, each atomically; the certificate last."""
    directory = Path(directory)
    _ensure_private_directory(directory)
    _write_atomic(directory / KEY_FILE, private_key_pem(issuer.key), mode=0o600)
    if issuer.chain:
        _write_atomic(directory / CHAIN_FILE, certificate_pem(*issuer.chain), mode=0o644)
    else:
        with contextlib.suppress(FileNotFoundError):
            (directory / CHAIN_FILE).unlink()
    _write_atomic(directory / CERT_FILE, issuer.certificate_pem, mode=0o644)


def save_rotation(directory: str | os.PathLike[str], rotation: RootRotation) -> None:
    directory = Path(directory)
    _ensure_private_directory(directory)
    data = json.dumps(rotation.to_dict(), indent=2, sort_keys=True).encode()
    _write_atomic(directory / ROTATION_FILE, data, mode=0o644)


def load_rotation(directory: str | os.PathLike[str]) -> RootRotation | None:
    """The rotation saved in ``directory``, or None when none is in progress."""
    path = Path(directory) / ROTATION_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(_read_public(path))
    except ValueError as exc:
        raise RotationError(f"{path} is not valid JSON: {exc}") from None
    return RootRotation.from_dict(data)


def _ensure_private_directory(directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise InvalidCaMaterial(f"{directory} exists and is not a directory")
        return
    directory.mkdir(mode=0o700, parents=True)
    directory.chmod(0o700)  # mkdir's mode is filtered by the umask


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
