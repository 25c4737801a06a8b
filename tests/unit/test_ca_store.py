"""CA material on disk: owner-only permissions, atomic writes, refusal of keys others can read, no key in logs."""

from __future__ import annotations

import logging
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xds_server.ca import RootRotation, RotationStep, create_intermediate, create_root
from xds_server.ca.keys import private_key_pem
from xds_server.ca.store import (
    CERT_FILE,
    CHAIN_FILE,
    KEY_FILE,
    load_issuer,
    load_issuer_files,
    load_or_create,
    load_rotation,
    read_key_file,
    save_issuer,
    save_rotation,
)
from xds_server.errors import InsecureKeyFile, InvalidCaMaterial, RotationError

T0 = datetime(2031, 3, 1, tzinfo=UTC)
TD = "mesh.example"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_creates_a_root_with_owner_only_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "ca" / "nested"
    issuer = load_or_create(directory, TD, now=T0)
    assert issuer.is_root
    assert mode(directory) == 0o700
    assert mode(directory / KEY_FILE) == 0o600
    assert (directory / CERT_FILE).read_bytes() == issuer.certificate_pem
    assert not (directory / CHAIN_FILE).exists()
    assert sorted(p.name for p in directory.iterdir()) == sorted([".ca.lock", CERT_FILE, KEY_FILE])  # no temp files


def test_permissions_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create(tmp_path / "ca", TD, now=T0)
    finally:
        os.umask(old)
    assert mode(tmp_path / "ca") == 0o700
    assert mode(tmp_path / "ca" / KEY_FILE) == 0o600


def test_the_next_start_loads_the_same_root(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, TD, now=T0)
    second = load_or_create(tmp_path, TD, now=T0)
    assert second.certificate == first.certificate
    assert private_key_pem(second.key) == private_key_pem(first.key)


def test_two_processes_starting_at_once_agree_on_one_root(tmp_path: Path) -> None:
    results: list[bytes] = []

    def start() -> None:
        results.append(load_or_create(tmp_path, TD, now=T0).certificate_pem)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert len(set(results)) == 1


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o644, 0o660, 0o700 | 0o020])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, bad_mode: int) -> None:
    load_or_create(tmp_path, TD, now=T0)
    (tmp_path / KEY_FILE).chmod(bad_mode)
    with pytest.raises(InsecureKeyFile, match=rf"its mode is {bad_mode:04o}.*run `chmod 600 .*ca-key.pem`"):
        load_or_create(tmp_path, TD, now=T0)


def test_a_symlinked_key_is_judged_by_its_target(tmp_path: Path) -> None:
    root = create_root(TD, now=T0)
    save_issuer(tmp_path / "real", root)
    (tmp_path / "link.pem").symlink_to(tmp_path / "real" / KEY_FILE)
    assert read_key_file(tmp_path / "link.pem") == private_key_pem(root.key)
    (tmp_path / "real" / KEY_FILE).chmod(0o644)
    with pytest.raises(InsecureKeyFile):
        read_key_file(tmp_path / "link.pem")


def test_a_user_supplied_intermediate_loads_from_files(tmp_path: Path) -> None:
    root = create_root(TD, now=T0)
    inter = create_intermediate(root, now=T0)
    (tmp_path / "inter.pem").write_bytes(inter.certificate_pem)
    (tmp_path / "root.pem").write_bytes(root.certificate_pem)
    key = tmp_path / "inter-key.pem"
    key.touch(mode=0o600)
    key.write_bytes(private_key_pem(inter.key))
    loaded = load_issuer_files(tmp_path / "inter.pem", key, tmp_path / "root.pem", trust_domain=TD)
    assert loaded.certificate == inter.certificate
    assert loaded.root == root.certificate


def test_an_intermediate_saved_to_a_directory_reloads_with_its_chain(tmp_path: Path) -> None:
    inter = create_intermediate(create_root(TD, now=T0), now=T0)
    save_issuer(tmp_path, inter)
    assert mode(tmp_path / KEY_FILE) == 0o600
    assert load_issuer(tmp_path, TD) == inter
    assert load_or_create(tmp_path, TD, now=T0) == inter


def test_a_certificate_without_its_key_is_refused_not_replaced(tmp_path: Path) -> None:
    load_or_create(tmp_path, TD, now=T0)
    before = (tmp_path / CERT_FILE).read_bytes()
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(InvalidCaMaterial, match=r"exists but its key .* does not; refusing to replace the CA"):
        load_or_create(tmp_path, TD, now=T0)
    assert (tmp_path / CERT_FILE).read_bytes() == before


def test_a_key_left_by_an_interrupted_creation_is_replaced(tmp_path: Path) -> None:
    load_or_create(tmp_path, TD, now=T0)
    (tmp_path / CERT_FILE).unlink()
    issuer = load_or_create(tmp_path, TD, now=T0)
    assert (tmp_path / KEY_FILE).read_bytes() == private_key_pem(issuer.key)


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidCaMaterial, match="does not exist"):
        read_key_file(tmp_path / "nope.pem")


def test_a_directory_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidCaMaterial, match="is not a directory"):
        load_or_create(tmp_path / "f", TD, now=T0)


def test_logs_name_serials_never_key_material(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    issuer = load_or_create(tmp_path, TD, now=T0)
    load_or_create(tmp_path, TD, now=T0)
    text = caplog.text
    assert f"{issuer.certificate.serial_number:x}" in text
    assert "PRIVATE KEY" not in text
    key_body = b"".join(private_key_pem(issuer.key).splitlines()[1:-1]).decode()
    for chunk in (key_body[i : i + 16] for i in range(0, len(key_body), 16)):
        assert chunk not in text


def test_a_rotation_in_progress_is_saved_and_resumed(tmp_path: Path) -> None:
    assert load_rotation(tmp_path) is None
    rotation = RootRotation.start(create_root(TD, now=T0).certificate, create_root(TD, now=T0).certificate)
    rotation = rotation.advance(RotationStep.ADD_NEW_ROOT, pending=(), now=T0)
    save_rotation(tmp_path, rotation)
    assert load_rotation(tmp_path) == rotation


def test_a_corrupt_rotation_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rotation.json").write_text("{not json")
    with pytest.raises(RotationError, match="not valid JSON"):
        load_rotation(tmp_path)
