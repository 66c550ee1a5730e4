"""The browser's crypto (client/web/teaclave-crypto.js) against the Python client, both ways:
files, wrapped keys and receipts made on one side open on the other, and altered ones open
nowhere. Runs small scripts under Node (>= 20, required: these tests fail without it)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from node_suites import SuiteRun, listed
from paths import VECTORS, WEB
from receipts import PAYLOAD
from teaclave_client.crypto import IntegrityError, decrypt, encrypt, generate_key
from teaclave_client.sealing import (
    RECEIPT_FORMATS,
    UNVERSIONED,
    canonical_json,
    unwrap_key,
    verify_receipt,
)

from teaclave_infer.domain.keys import PlatformKeys

SCHEMAS = ["aes-gcm-128", "aes-gcm-256"]
FILE = "0123456789abcdef0123456789abcdef"
PLAINTEXT = os.urandom(100_003)

PRELUDE = f"""
import {{ readFileSync }} from 'node:fs';
import * as tc from {json.dumps((WEB / "teaclave-crypto.js").as_uri())};
const input = JSON.parse(readFileSync(0, 'utf8'));
const hex = (text) => tc.fromHex(text);
const out = (value) => process.stdout.write(JSON.stringify(value));
const errorName = async (promise) => {{
  try {{ await promise; return null; }} catch (err) {{ return err.name; }}
}};
const errorText = async (promise) => {{
  try {{ await promise; return null; }} catch (err) {{ return `${{err.name}}: ${{err.message}}`; }}
}};
"""


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node (>= 20) is needed to test client/web/teaclave-crypto.js: install it")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"node >= 20 is needed for WebCrypto X25519/Ed25519, not {version.stdout}")
    return path


def run_js(node: str, body: str, **inputs: Any) -> Any:
    """Runs `body` as an ES module after PRELUDE (`tc` is the module, `input` the inputs) and
    returns what it passed to out()."""
    proc = subprocess.run(
        [node, "--input-type=module", "-e", PRELUDE + body],
        input=json.dumps(inputs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"the node script failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


NODE_SUITE = WEB / "test" / "crypto.test.mjs"


@pytest.fixture(scope="session")
def node_suite() -> SuiteRun:
    return SuiteRun(NODE_SUITE)


@pytest.mark.parametrize("name", listed(NODE_SUITE))
def test_node(node_suite: SuiteRun, name: str) -> None:
    """Each test of client/web/test/crypto.test.mjs, as its own case."""
    node_suite.check(name)


@pytest.mark.parametrize("schema", [*SCHEMAS, "raw"])
def test_python_files_open_in_js(node: str, schema: str) -> None:
    key = generate_key(schema)
    sealed, meta = encrypt(schema, key, PLAINTEXT)
    plain = run_js(
        node,
        """out(tc.toHex(await tc.decryptFile(
          input.schema, hex(input.key), hex(input.iv), hex(input.data), hex(input.cmac))));""",
        schema=schema,
        key=key.hex(),
        iv=meta.iv.hex(),
        data=sealed.hex(),
        cmac=meta.cmac.hex(),
    )
    assert bytes.fromhex(plain) == PLAINTEXT


@pytest.mark.parametrize("schema", [*SCHEMAS, "raw"])
def test_js_files_open_in_python(node: str, schema: str) -> None:
    sealed = run_js(
        node,
        """const key = tc.generateKey(input.schema);
        const f = await tc.encryptFile(input.schema, key, hex(input.plaintext));
        out({key: tc.toHex(key), data: tc.toHex(f.data), iv: tc.toHex(f.iv),
             cmac: tc.toHex(f.cmac)});""",
        schema=schema,
        plaintext=PLAINTEXT.hex(),
    )
    key, iv, data, cmac = (bytes.fromhex(sealed[k]) for k in ("key", "iv", "data", "cmac"))
    assert decrypt(schema, key, iv, data, cmac) == PLAINTEXT
    if schema != "raw":
        assert len(iv) == 12 and data != PLAINTEXT and cmac == data[-16:]


def test_teaclave_file_128_is_refused_in_js_with_a_message_that_says_why(node: str) -> None:
    key = generate_key("teaclave-file-128")
    sealed, meta = encrypt("teaclave-file-128", key, b"seven")
    errors = run_js(
        node,
        """out([
          await tc.wrapKey(hex(input.key), input.platform, input.file, input.schema)
            .then(() => null, (err) => err.message),
          await errorText(tc.encryptFile(input.schema, hex(input.key), hex(input.data))),
          await errorText(tc.decryptFile(
            input.schema, hex(input.key), new Uint8Array(0), hex(input.data), hex(input.cmac))),
        ]);""",
        schema="teaclave-file-128",
        key=key.hex(),
        data=sealed.hex(),
        cmac=meta.cmac.hex(),
        file=FILE,
        platform=base64.b64encode(
            X25519PrivateKey.generate().public_key().public_bytes_raw()
        ).decode(),
    )
    assert errors[0] is None  # its key can still be wrapped for the platform
    for text in errors[1:]:
        assert text.startswith("RangeError: teaclave-file-128 files are not supported in the")
        assert "Python client" in text


def flipped(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_altered_python_files_are_integrity_errors_in_js(node: str, schema: str) -> None:
    key = generate_key(schema)
    sealed, meta = encrypt(schema, key, b"seven")
    good = {"key": key.hex(), "iv": meta.iv.hex(), "data": sealed.hex(), "cmac": meta.cmac.hex()}
    cases = {
        "ciphertext": good | {"data": flipped(sealed, 0).hex()},
        "tag": good | {"data": flipped(sealed, -1).hex(), "cmac": None},
        "iv": good | {"iv": flipped(meta.iv, 11).hex()},
        "key": good | {"key": generate_key(schema).hex()},
        "cmac": good | {"cmac": flipped(meta.cmac, 0).hex()},
        "truncated": good | {"data": sealed[:-1].hex(), "cmac": None},
    }
    errors = run_js(
        node,
        """const errors = {};
        for (const [what, c] of Object.entries(input.cases)) {
          errors[what] = await errorName(tc.decryptFile(
            input.schema, hex(c.key), hex(c.iv), hex(c.data), c.cmac && hex(c.cmac)));
        }
        out(errors);""",
        schema=schema,
        cases=cases,
    )
    assert errors == dict.fromkeys(cases, "IntegrityError")


@pytest.mark.parametrize("schema", [*SCHEMAS, "raw"])
def test_js_wrapped_keys_open_with_the_platform_key_only_for_their_file(
    node: str, schema: str
) -> None:
    platform = X25519PrivateKey.generate()
    public = base64.b64encode(platform.public_key().public_bytes_raw()).decode()
    key = generate_key(schema)
    wrapped = run_js(
        node,
        "out(await tc.wrapKey(hex(input.key), input.platform, input.file, input.schema));",
        key=key.hex(),
        platform=public,
        file=FILE,
        schema=schema,
    )
    assert unwrap_key(wrapped, platform, FILE, schema) == key
    other_schema = "aes-gcm-256" if schema == "aes-gcm-128" else "aes-gcm-128"
    for file_id, s, private in (
        ("f" * 32, schema, platform),
        (FILE, other_schema, platform),
        (FILE, schema, X25519PrivateKey.generate()),
    ):
        with pytest.raises(IntegrityError):
            unwrap_key(wrapped, private, file_id, s)


def test_platform_receipts_verify_in_js_and_altered_ones_do_not(node: str, tmp_path: Path) -> None:
    keys = PlatformKeys.load_or_create(tmp_path / "keys")
    other = PlatformKeys.load_or_create(tmp_path / "other")
    payload = dict(PAYLOAD)
    receipt = keys.sign(payload)
    payload = receipt["payload"]  # with its receipt_version
    assert verify_receipt(receipt, keys.public()["signing"]["public_key"]) == payload
    bad_signature = flipped(base64.b64decode(receipt["signature"]), 10)
    results = run_js(
        node,
        """const {receipt, keys, other} = input;
        const expected = {task_id: '5f0c', return_value: -3, outputs: receipt.payload.outputs};
        out({
          payload: await tc.verifyReceipt(receipt, keys, expected),
          altered: await errorName(tc.verifyReceipt(
            {...receipt, payload: {...receipt.payload, return_value: 4}}, keys)),
          signature: await errorName(tc.verifyReceipt({...receipt, signature: input.bad}, keys)),
          other_platform: await errorName(tc.verifyReceipt(receipt, other)),
          other_task: await errorName(tc.verifyReceipt(receipt, keys, {task_id: 'x'})),
        });""",
        receipt=receipt,
        keys=keys.public(),
        other=other.public(),
        bad=base64.b64encode(bad_signature).decode(),
    )
    assert results == {
        "payload": payload,
        "altered": "ReceiptError",
        "signature": "ReceiptError",
        "other_platform": "ReceiptError",
        "other_task": "ReceiptError",
    }


def test_receipt_bodies_are_the_rfc8785_bytes_python_signs(node: str) -> None:
    values: list[Any] = [
        {"b": 1, "a": [True, False, None], "A": {}, "": []},
        {"\uffff": 1, "\U0001f600": 2, "é": 3, "z": 4},  # UTF-16 order, not code points'
        {"s": ['\x00\x01\x1f\x7f\u2028"\\/\n\r\t\b\f', "</script>", "🙂 ünïcödé"]},
        {"n": [0, -1, 2**53 - 1, -(2**53 - 1), 0.5, -2.5, 123.456, 0.1 + 0.2, 1e-4, 1e-7, 1e21]},
        {"n": [5e-324, 2.2250738585072014e-308, 1 / 3, 4503599627370495.5, 2.0, -0.0]},
    ]
    values = [{**v, "receipt_version": 2} for v in values]
    ours = run_js(
        node,
        "out(input.values.map((v) => new TextDecoder().decode(tc.receiptBody(v))));",
        values=values,
    )
    assert ours == [canonical_json(v).decode() for v in values]


VECTOR_V1 = json.loads((VECTORS / "receipt-v1.json").read_text("utf-8"))


def test_a_receipt_made_before_versions_verifies_in_js_and_altered_does_not(node: str) -> None:
    results = run_js(
        node,
        """const {receipt, signing} = input.vector;
        const keys = {signing};
        const changed = (fields) => ({...receipt, payload: {...receipt.payload, ...fields}});
        out({
          payload: await tc.verifyReceipt(receipt, keys, {return_value: 7}),
          altered: await errorText(tc.verifyReceipt(changed({return_value: 8}), keys)),
          upgraded: await errorText(tc.verifyReceipt(changed({receipt_version: 2}), keys)),
        });""",
        vector=VECTOR_V1,
    )
    assert results["payload"] == VECTOR_V1["receipt"]["payload"]
    mismatch = "ReceiptError: the receipt's signature does not match its contents"
    assert results["altered"] == f"{mismatch} (format v1)"
    assert results["upgraded"] == f"{mismatch} (format v2)"


def test_receipts_that_lie_about_their_format_or_name_no_known_one_are_refused_in_js(
    node: str, tmp_path: Path
) -> None:
    keys = PlatformKeys.load_or_create(tmp_path / "keys")
    key_id = keys.public()["signing"]["key_id"]

    def signed_over(payload: dict[str, Any], body: bytes) -> dict[str, Any]:
        signature = base64.b64encode(keys.signing.sign(body)).decode()
        return {"payload": payload, "signature": signature, "key_id": key_id}

    # where the two formats write different bytes: a float's exponent, a key beyond U+FFFF
    differing = {"task_id": "t", "score": 1e-7, "outputs": {"\U0001f600": "33", "\uffff": "44"}}
    v2 = {**differing, "receipt_version": 2}
    receipts = {
        "v2_signed_as_v1": signed_over(v2, RECEIPT_FORMATS[UNVERSIONED](v2)),
        "v1_signed_as_v2": signed_over(differing, canonical_json(differing)),
        "v1_float_signed_as_v2": signed_over({"score": 1e-7}, canonical_json({"score": 1e-7})),
        **{
            f"version_{json.dumps(v)}": signed_over(p, canonical_json(p))
            for v in (1, 3, "2", None, 2.5)
            for p in [{"task_id": "t", "receipt_version": v}]
        },
    }
    errors = run_js(
        node,
        """const errors = {};
        for (const [what, receipt] of Object.entries(input.receipts)) {
          errors[what] = await errorText(tc.verifyReceipt(receipt, input.keys));
        }
        out(errors);""",
        receipts=receipts,
        keys=keys.public(),
    )
    mismatch = "ReceiptError: the receipt's signature does not match its contents"
    assert errors.pop("v2_signed_as_v1") == f"{mismatch} (format v2)"
    not_checkable = "ReceiptError: a v1 receipt with a number other than a safe integer"
    assert errors.pop("v1_signed_as_v2").startswith(not_checkable)
    assert errors.pop("v1_float_signed_as_v2").startswith(not_checkable)
    assert errors == {
        what: f"ReceiptError: unknown receipt version {what[8:]}: known are 2, or none (v1)"
        for what in errors
    }
    assert len(errors) == 5
