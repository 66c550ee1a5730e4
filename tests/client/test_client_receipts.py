"""Receipts in the Python client (teaclave_client.sealing): the platform signs RFC 8785 JSON with
`receipt_version` 2 inside the signed payload; an unversioned (v1) receipt made before, such as
tests/data/vectors/receipt-v1.json (made by the code of that time), still verifies; a receipt that
lies about its format, names a version no one knows, or was altered, is refused with a clear
message. test_web_crypto.py checks the same against the browser's code."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from paths import VECTORS
from receipts import PAYLOAD
from teaclave_client.errors import ReceiptError
from teaclave_client.sealing import (
    RECEIPT_FORMATS,
    RECEIPT_VERSION,
    UNVERSIONED,
    canonical_json,
    receipt_body,
    verify_receipt,
)

from teaclave_infer.domain.keys import PlatformKeys

VECTOR_V1: dict[str, Any] = json.loads((VECTORS / "receipt-v1.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> PlatformKeys:
    return PlatformKeys.load_or_create(tmp_path_factory.mktemp("keys"))


def signed_over(keys: PlatformKeys, payload: dict[str, Any], body: bytes) -> dict[str, Any]:
    """A receipt of `payload` whose signature, by the platform's real key, covers `body`."""
    signature = base64.b64encode(keys.signing.sign(body)).decode()
    return {
        "payload": payload,
        "signature": signature,
        "key_id": keys.public()["signing"]["key_id"],
    }


def public(keys: PlatformKeys) -> str:
    return str(keys.public()["signing"]["public_key"])


def test_the_platform_signs_rfc8785_json_with_the_version_inside(keys: PlatformKeys) -> None:
    receipt = keys.sign(PAYLOAD)
    assert receipt["payload"] == {**PAYLOAD, "receipt_version": 2}
    assert verify_receipt(receipt, public(keys)) == receipt["payload"]
    assert receipt_body(receipt["payload"]) == canonical_json(receipt["payload"])
    assert keys.public()["signing"]["receipt_version"] == RECEIPT_VERSION


def test_canonical_json_is_rfc8785() -> None:
    value = {"b": [1, 1e-7, 2.0, 1e21, 0.1 + 0.2], "\U0001f600": 0, "\uffff": 1, "a": "é\n"}
    # keys by UTF-16 unit (U+1F600 is D83D DE00, before U+FFFF), ECMAScript number text
    text = '{"a":"é\\n","b":[1,1e-7,2,1e+21,0.30000000000000004],"\U0001f600":0,"\uffff":1}'
    assert canonical_json(value) == text.encode()


def test_a_receipt_made_before_versions_still_verifies() -> None:
    receipt, signing = VECTOR_V1["receipt"], VECTOR_V1["signing"]
    assert "receipt_version" not in receipt["payload"]
    assert verify_receipt(receipt, signing["public_key"]) == receipt["payload"]
    altered = {**receipt, "payload": {**receipt["payload"], "return_value": 8}}
    with pytest.raises(ReceiptError, match=r"signature does not match its contents \(format v1\)"):
        verify_receipt(altered, signing["public_key"])
    upgraded = {**receipt, "payload": {**receipt["payload"], "receipt_version": 2}}
    with pytest.raises(ReceiptError, match=r"signature does not match its contents \(format v2\)"):
        verify_receipt(upgraded, signing["public_key"])


def test_a_tampered_field_is_refused(keys: PlatformKeys) -> None:
    receipt = keys.sign(PAYLOAD)
    for name, value in [("return_value", 4), ("task_id", "other"), ("outputs", {})]:
        altered = {**receipt, "payload": {**receipt["payload"], name: value}}
        with pytest.raises(ReceiptError, match=r"does not match its contents \(format v2\)"):
            verify_receipt(altered, public(keys))
    dropped = {k: v for k, v in receipt["payload"].items() if k != "receipt_version"}
    with pytest.raises(ReceiptError, match=r"\(format v1\)"):
        verify_receipt({**receipt, "payload": dropped}, public(keys))


# Where the two formats write different bytes: a float's exponent, and a key beyond U+FFFF.
DIFFERING = {**PAYLOAD, "score": 1e-7, "outputs": {"\U0001f600": "33" * 16, "\uffff": "44" * 16}}


def test_a_receipt_whose_version_names_the_other_format_is_refused(keys: PlatformKeys) -> None:
    v2 = {**DIFFERING, "receipt_version": 2}
    assert RECEIPT_FORMATS[UNVERSIONED](v2) != canonical_json(v2)
    lying_v2 = signed_over(keys, v2, RECEIPT_FORMATS[UNVERSIONED](v2))  # says v2, signed as v1
    with pytest.raises(ReceiptError, match=r"does not match its contents \(format v2\)"):
        verify_receipt(lying_v2, public(keys))
    lying_v1 = signed_over(keys, DIFFERING, canonical_json(DIFFERING))  # no version, RFC 8785
    with pytest.raises(ReceiptError, match=r"does not match its contents \(format v1\)"):
        verify_receipt(lying_v1, public(keys))


@pytest.mark.parametrize("version", [1, 3, "2", None, 2.5, True, [2], {"v": 2}])
def test_an_unknown_version_is_refused(keys: PlatformKeys, version: object) -> None:
    payload = {**PAYLOAD, "receipt_version": version}
    receipt = signed_over(keys, payload, json.dumps(payload).encode())
    with pytest.raises(ReceiptError, match=r"^unknown receipt version .*: known are 2, or none"):
        verify_receipt(receipt, public(keys))


@pytest.mark.parametrize(
    "payload",
    [
        {**PAYLOAD, "receipt_version": 2, "big": 2**60},
        {**PAYLOAD, "receipt_version": 2, "s": "\ud800"},
    ],
)
def test_a_payload_with_no_canonical_form_is_refused(keys: PlatformKeys, payload: dict) -> None:
    receipt = signed_over(keys, payload, b"{}")
    with pytest.raises(ReceiptError, match="no canonical JSON"):
        verify_receipt(receipt, public(keys))


@pytest.mark.parametrize(
    "receipt",
    [
        None,
        [],
        {},
        {"payload": [1], "signature": "", "key_id": ""},
        {"payload": {}, "signature": 7},
    ],
)
def test_a_malformed_receipt_is_refused(keys: PlatformKeys, receipt: Any) -> None:
    with pytest.raises(ReceiptError, match="malformed receipt"):
        verify_receipt(receipt, public(keys))
