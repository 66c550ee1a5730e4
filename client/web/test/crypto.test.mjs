// Pure-JS checks of teaclave-crypto.js (run: node --test client/web/test/crypto.test.mjs).
// tests/web/test_web_crypto.py runs this file and cross-checks every format against the Python client.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  IntegrityError,
  ReceiptError,
  RECEIPT_VERSION,
  decryptFile,
  encryptFile,
  fromBase64,
  fromHex,
  generateKey,
  hpkeSealBase,
  keyId,
  rawCmac,
  receiptBody,
  toBase64,
  toHex,
  verifyReceipt,
  wrapKey,
} from "../teaclave-crypto.js";

const PLAINTEXT = new TextEncoder().encode("a digit, 28 x 28, as float32");
const flip = (bytes, at) => {
  const out = bytes.slice();
  out[at < 0 ? out.length + at : at] ^= 1;
  return out;
};

for (const schema of ["aes-gcm-128", "aes-gcm-256"]) {
  test(`${schema}: a round trip, a fresh iv each time`, async () => {
    const key = generateKey(schema);
    assert.equal(key.length, schema === "aes-gcm-128" ? 16 : 32);
    const { data, iv, cmac } = await encryptFile(schema, key, PLAINTEXT);
    assert.equal(data.length, PLAINTEXT.length + 16);
    assert.equal(iv.length, 12);
    assert.deepEqual(cmac, data.slice(-16));
    assert.deepEqual(await decryptFile(schema, key, iv, data, cmac), PLAINTEXT);
    assert.deepEqual(await decryptFile(schema, key, iv, data), PLAINTEXT);
    assert.notDeepEqual((await encryptFile(schema, key, PLAINTEXT)).iv, iv);
  });

  test(`${schema}: every wrong file, key, iv or cmac is an IntegrityError`, async () => {
    const key = generateKey(schema);
    const { data, iv, cmac } = await encryptFile(schema, key, PLAINTEXT);
    const attempts = {
      "flipped ciphertext": [key, iv, flip(data, 0), undefined],
      "flipped tag": [key, iv, flip(data, -1), undefined],
      "flipped iv": [key, flip(iv, 0), data, undefined],
      "wrong key": [generateKey(schema), iv, data, undefined],
      "wrong cmac": [key, iv, data, flip(cmac, 3)],
      "empty cmac": [key, iv, data, new Uint8Array(0)],
      truncated: [key, iv, data.slice(0, 15), undefined],
      "short iv": [key, iv.slice(0, 8), data, undefined],
      "short key": [key.slice(1), iv, data, undefined],
      "not bytes": [key, iv, Array.from(data), undefined],
    };
    for (const [what, [k, i, d, c]] of Object.entries(attempts)) {
      await assert.rejects(decryptFile(schema, k, i, d, c), IntegrityError, what);
    }
    await assert.rejects(decryptFile("aes-gcm-512", key, iv, data), IntegrityError);
  });
}

test("raw: plaintext with a digest cmac", async () => {
  const { data, iv, cmac } = await encryptFile("raw", new Uint8Array(0), PLAINTEXT);
  assert.deepEqual(data, PLAINTEXT);
  assert.equal(iv.length, 0);
  assert.deepEqual(cmac, await rawCmac(PLAINTEXT));
  assert.equal(cmac.length, 16);
  assert.deepEqual(await decryptFile("raw", new Uint8Array(0), iv, data, cmac), PLAINTEXT);
  await assert.rejects(
    decryptFile("raw", new Uint8Array(0), iv, flip(data, 0), cmac),
    IntegrityError,
  );
  assert.equal(generateKey("raw").length, 0);
});

test("bad arguments to encryption are RangeErrors", async () => {
  assert.throws(() => generateKey("aes"), RangeError);
  await assert.rejects(encryptFile("aes-gcm-128", new Uint8Array(32), PLAINTEXT), RangeError);
  const platform = toBase64(new Uint8Array(32).fill(9));
  await assert.rejects(wrapKey(new Uint8Array(16), platform, "", "aes-gcm-128"), RangeError);
  await assert.rejects(wrapKey(new Uint8Array(16), platform, "a\0b", "aes-gcm-128"), RangeError);
  await assert.rejects(wrapKey(new Uint8Array(16), platform, "f", "aes-gcm-256"), RangeError);
  await assert.rejects(wrapKey(new Uint8Array(16), "AAAA", "f", "aes-gcm-128"), RangeError);
  await assert.rejects(wrapKey(new Uint8Array(16), "not base64!", "f", "aes-gcm-128"), RangeError);
});

test("base64 and hex are strict", () => {
  const bytes = Uint8Array.from({ length: 70000 }, (_, i) => i % 251);
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  assert.deepEqual(fromHex(toHex(bytes)), bytes);
  assert.deepEqual(fromHex("00FFa0"), Uint8Array.of(0, 255, 160));
  for (const bad of ["YQ", "YQ=", "Y Q==", "YQ==YQ==", "YQ-_", 7]) {
    assert.throws(() => fromBase64(bad), RangeError, String(bad));
  }
  for (const bad of ["0", "0g", " 00"]) assert.throws(() => fromHex(bad), RangeError, bad);
});

// RFC 9180, A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, sequence 0.
test("HPKE matches the RFC 9180 A.1.1 test vector", async () => {
  const { enc, ciphertext } = await hpkeSealBase(
    fromHex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"), // pkRm
    fromHex("4f6465206f6e2061204772656369616e2055726e"), // "Ode on a Grecian Urn"
    fromHex("4265617574792069732074727574682c20747275746820626561757479"),
    {
      aad: fromHex("436f756e742d30"),
      ikm: fromHex("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234"), // ikmE
    },
  );
  assert.equal(toHex(enc), "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431");
  assert.equal(
    toHex(ciphertext),
    "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
  );
});

test("a key is never sealed to a low-order point (the shared secret would be zero)", async () => {
  for (const point of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    const platform = toBase64(point);
    await assert.rejects(wrapKey(new Uint8Array(16), platform, "f", "aes-gcm-128"), RangeError);
  }
});

test("a wrapped key is enc (32 bytes) || the sealed key and its tag, fresh each time", async () => {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  const platform = toBase64(new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
  const key = generateKey("aes-gcm-256");
  const wrapped = await wrapKey(key, platform, "file-1", "aes-gcm-256");
  assert.equal(fromBase64(wrapped).length, 32 + 32 + 16);
  assert.notEqual(await wrapKey(key, platform, "file-1", "aes-gcm-256"), wrapped);
  assert.equal(fromBase64(await wrapKey(new Uint8Array(0), platform, "f", "raw")).length, 48);
});

test("receipts are signed over RFC 8785 JSON: sorted by UTF-16 units, ECMAScript numbers", () => {
  const value = {
    b: [1, -2.5, 1e-7, 0.0001, 1e21, true, null],
    a: 'é"\\\n\u0001/',
    "\u{1F600}": 0,
    "\uffff": 1,
    receipt_version: RECEIPT_VERSION,
  };
  const text =
    '{"a":"é\\"\\\\\\n\\u0001/","b":[1,-2.5,1e-7,0.0001,1e+21,true,null],' +
    '"receipt_version":2,"\u{1F600}":0,"\uffff":1}';
  assert.equal(new TextDecoder().decode(receiptBody(value)), text);
});

test("a receipt of an unknown version, or a v1 one this page cannot check, is refused", () => {
  for (const receipt_version of [1, 3, "2", null, 2.5]) {
    assert.throws(() => receiptBody({ receipt_version, task_id: "t" }), /unknown receipt version/);
  }
  assert.throws(() => receiptBody({ return_value: 2 ** 60 }), /v1 receipt/);
  assert.throws(() => receiptBody({ outputs: { x: [0.5] } }), /v1 receipt/);
  assert.throws(() => receiptBody({ receipt_version: 2, x: "\ud800" }), /no canonical JSON/);
  assert.ok(receiptBody({ receipt_version: 2, x: 2 ** 60, y: 0.5 }).length > 0);
});

async function signedReceipt(payload) {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const data = receiptBody(payload);
  const signed = await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, data);
  const signature = new Uint8Array(signed);
  const keys = { signing: { public_key: toBase64(raw), key_id: await keyId(raw) } };
  return { keys, receipt: { payload, signature: toBase64(signature), key_id: await keyId(raw) } };
}

test("a receipt verifies, and nothing else does", async () => {
  const payload = {
    task_id: "t1", return_value: 7, outputs: { out: "ab" }, result_kind: "ok", receipt_version: 2,
  };
  const { keys, receipt } = await signedReceipt(payload);
  assert.deepEqual(await verifyReceipt(receipt, keys), payload);
  const expected = { task_id: "t1", outputs: { out: "ab" } };
  assert.deepEqual(await verifyReceipt(receipt, keys, expected), payload);
  const other = await signedReceipt(payload);
  const attempts = [
    [{ ...receipt, payload: { ...payload, return_value: 8 } }, keys],
    [{ ...receipt, signature: toBase64(flip(fromBase64(receipt.signature), 5)) }, keys],
    [{ ...receipt, key_id: other.receipt.key_id }, keys],
    [receipt, other.keys],
    [{ ...receipt, signature: "x" }, keys],
    [{ key_id: receipt.key_id, signature: receipt.signature }, keys],
    [receipt, {}],
    [null, keys],
  ];
  for (const [r, k] of attempts) await assert.rejects(verifyReceipt(r, k), ReceiptError);
  await assert.rejects(verifyReceipt(receipt, keys, { task_id: "t2" }), ReceiptError);
  await assert.rejects(verifyReceipt(receipt, keys, { missing: 1 }), ReceiptError);
  assert.ok(new ReceiptError("x") instanceof IntegrityError);
});
