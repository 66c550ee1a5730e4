"""`teaclave-infer demo` on bad input: one line on stderr, before anything is built or started
(no TVM needed: the fast tier runs these)."""

from __future__ import annotations

import subprocess
import sys

from service_helpers import refused_port

from teaclave_infer.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teaclave-infer: error: "), err
    return err[0]


def test_a_missing_images_folder_is_one_line_before_anything_starts(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path / "build"), "--images", str(tmp_path / "nowhere")]
    assert main(args) == 1
    assert f"{tmp_path / 'nowhere'} is not a folder of images" in one_line_error(capsys)
    assert not (tmp_path / "build").exists()  # nothing built, so no service started either


def test_an_unreachable_url_is_one_line(tmp_path, capsys):
    (tmp_path / "admin.txt").write_text("whatever")
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        args = ["demo", "--url", url, "--admin-password-file", str(tmp_path / "admin.txt")]
        assert main([*args, "--out", str(tmp_path / "build")]) == 1
    assert f"cannot reach the service at {url}" in one_line_error(capsys)
    assert not (tmp_path / "build").exists()


def test_a_wrong_admin_password_is_one_line(tmp_path, capsys, live_service):
    (tmp_path / "admin.txt").write_text("not-the-password")
    args = ["demo", "--url", live_service, "--admin-password-file", str(tmp_path / "admin.txt")]
    assert main([*args, "--out", str(tmp_path / "build")]) == 1
    assert "401" in one_line_error(capsys)
    assert not (tmp_path / "build").exists()
    assert main([*args[:3], "--admin-password-file", str(tmp_path / "none.txt")]) == 1
    assert "none.txt" in one_line_error(capsys)


def test_the_demo_against_a_url_imports_no_tvm():
    code = "import sys, teaclave_examples.mnist.local\nprint('tvm' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
