"""teaclave_client.files: a file is written whole or not at all, secrets are never readable by
others, and a failure leaves the target as it was and no temporary file behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from teaclave_client.files import PRIVATE, atomic_file, write_atomic, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_is_created_then_replaced_whole(tmp_path):
    target = tmp_path / "out.bin"
    write_atomic(target, b"first")
    write_atomic(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_failure_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_secrets_are_private_from_the_start(tmp_path):
    old = os.umask(0)  # even with a umask that lets everyone read
    try:
        write_private(tmp_path / "keys" / "k.json", b"secret")
        write_atomic(tmp_path / "blob", b"ciphertext", PRIVATE)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "keys" / "k.json") == 0o600
    assert _mode(tmp_path / "keys") == 0o700
    assert _mode(tmp_path / "blob") == 0o600


def test_without_replace_an_existing_file_is_refused(tmp_path):
    target = tmp_path / "key.pem"
    write_atomic(target, b"the key", PRIVATE, replace=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"another key", PRIVATE, replace=False)
    assert target.read_bytes() == b"the key"
    assert os.listdir(tmp_path) == ["key.pem"]


def test_in_an_open_directory_no_symlink_is_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"untouched")
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "out").symlink_to(elsewhere)
    directory = os.open(inside, os.O_DIRECTORY)
    try:
        write_atomic(Path("new"), b"data", replace=False, dir_fd=directory)
        with pytest.raises(FileExistsError):
            write_atomic(Path("out"), b"data", replace=False, dir_fd=directory)
    finally:
        os.close(directory)
    assert (inside / "new").read_bytes() == b"data"
    assert elsewhere.read_bytes() == b"untouched"
    assert sorted(os.listdir(inside)) == ["new", "out"]
