"""The access matrix: each role x each endpoint x own vs another user's resource. A caller who
may not know a resource exists gets 404, one who may see it but not act gets 403, no token 401."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from teaclave_client import protected_fs
from teaclave_client.errors import InvalidRequest
from test_service_tasks import CMAC, World, private_mnist, task_body

from teaclave_infer.api import create_app
from teaclave_infer.domain.models import DataFile
from teaclave_infer.domain.settings import Settings

CALLERS = ("anon", "admin", "fo", "fo2", "do1", "eve")
# (method, path, body, expected status per caller in CALLERS order)
MATRIX = [
    ("get", "/v1/functions/{F}", None, (401, 200, 200, 404, 200, 404)),
    ("get", "/v1/functions/{F}/payload", None, (401, 403, 200, 404, 200, 404)),
    ("patch", "/v1/functions/{F}", {}, (401, 200, 200, 404, 403, 404)),
    ("get", "/v1/functions/{F}/usage", None, (401, 200, 200, 404, 403, 404)),
    ("get", "/v1/files/{I}", None, (401, 404, 404, 404, 200, 404)),
    ("get", "/v1/files/{O}", None, (401, 404, 404, 404, 200, 404)),
    ("get", "/v1/tasks/{T}", None, (401, 404, 200, 404, 200, 404)),
    (
        "post",
        "/v1/tasks/{T}/assign",
        {"inputs": {"input_img": "{I}"}},
        (401, 404, 404, 404, 200, 404),
    ),
    ("post", "/v1/tasks/{T}/approve", None, (401, 404, 409, 404, 409, 404)),
    ("post", "/v1/tasks/{T}/invoke", None, (401, 404, 403, 404, 409, 404)),
    ("post", "/v1/tasks", "TASK", (401, 404, 201, 404, 201, 404)),
    ("get", "/v1/users", None, (401, 200, 403, 403, 403, 403)),
    ("get", "/v1/users/{do1}", None, (401, 200, 403, 403, 403, 403)),
    ("get", "/v1/audit", None, (401, 200, 403, 403, 403, 403)),
    ("delete", "/v1/functions/{F}", None, (401, None, None, 404, 403, 404)),
]


def test_access_matrix(settings: Settings, mnist):
    w = World(TestClient(create_app(settings)))
    w.auth["admin"], w.auth["anon"] = w.admin, {}
    ids = {
        "F": private_mnist(w, mnist),
        "I": w.input_file("do1"),
        "O": w.output_file("do1"),
        "do1": w.ids["do1"],
    }
    body = task_body(w, ids["F"])
    body["inputs_ownership"][1]["owners"] = [
        w.ids["do1"]
    ]  # do1 owns every input: fo, do1 take part
    ids["T"] = w.post("do1", "/v1/tasks", body).json()["id"]
    wrong = []
    for method, path, payload, expected in MATRIX:
        url = path.format(**ids)
        for caller, want in zip(CALLERS, expected, strict=True):
            if want is None:
                continue
            kwargs = {}
            if payload == "TASK":
                kwargs["json"] = body
            elif payload is not None:
                kwargs["json"] = {
                    k: {n: f.format(**ids) for n, f in v.items()} if isinstance(v, dict) else v
                    for k, v in payload.items()
                }
            got = w.client.request(method.upper(), url, headers=w.auth[caller], **kwargs)
            if got.status_code != want:
                wrong.append(f"{caller} {method.upper()} {path}: {got.status_code}, want {want}")
    assert not wrong, "\n".join(wrong)


def test_input_from_a_finished_output(settings: Settings, mnist):
    w = World(TestClient(create_app(settings)))
    out = w.output_file("do1")
    refused = w.post("do1", "/v1/files/inputs/from-output", {"output_id": out})
    assert refused.status_code == 409  # nothing written it yet
    with w.client.app.state.platform.sessions() as session:  # what a finished task records
        session.get(DataFile, out).cmac = CMAC
        session.commit()
    assert w.post("eve", "/v1/files/inputs/from-output", {"output_id": out}).status_code == 404
    made = w.post("do1", "/v1/files/inputs/from-output", {"output_id": out})
    assert made.status_code == 201
    assert made.json()["kind"] == "input" and made.json()["cmac"] == CMAC
    assert made.json()["owners"] == [w.ids["do1"]]


def test_an_oversized_function_is_refused(tmp_path, mnist):
    (tmp_path / "admin.txt").write_text("admin-password-1")
    settings = Settings(
        data_dir=tmp_path / "d", admin_password_file=tmp_path / "admin.txt", max_function_bytes=1000
    )
    w = World(TestClient(create_app(settings)))
    response = w.register("fo", *mnist)
    assert response.status_code == 413 and "over 1000 bytes" in response.json()["detail"]


@pytest.mark.parametrize("bad", ["zz", "0011"])
def test_file_fields_are_checked(settings: Settings, bad):
    w = World(TestClient(create_app(settings)))
    r = w.post(
        "do1",
        "/v1/files/inputs",
        {"url": "file:///x", "schema": "aes-gcm-128", "iv": "00" * 12, "cmac": bad},
    )
    assert r.status_code == 422 and "cmac" in r.json()["detail"]


def test_a_teaclave_file_128_input_has_no_iv_and_is_served_against_its_metadata_gmac(
    settings: Settings, tmp_path: Path
):
    w = World(TestClient(create_app(settings)))
    sdk, schema = w.sdk("do1"), "teaclave-file-128"
    info = sdk.put_input(b"a protected payload", schema)
    assert info.schema == schema and info.iv == ""
    stored = sdk.keys.get(info.id)
    assert stored is not None
    sealed, plain = sdk.download(info.id), tmp_path / "plain"
    (tmp_path / "sealed").write_bytes(sealed)
    cmac = bytes.fromhex(info.cmac or "")
    assert protected_fs.decrypt_file(stored[1], tmp_path / "sealed", plain, cmac) == info.id
    assert plain.read_bytes() == b"a protected payload"
    with pytest.raises(InvalidRequest, match="has no iv"):
        sdk.register_input_file(sdk.upload(sealed), schema, stored[1], bytes(12), cmac)
