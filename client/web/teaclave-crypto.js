// Teaclave's client crypto for browsers and Node >= 20: WebCrypto (globalThis.crypto), TextEncoder,
// atob/btoa, and the vendored modules of vendor/ (loaded as they are, no build step; the page's
// import map resolves their imports of each other). Byte-compatible with the Python client:
//   - files (client/teaclave_client/crypto.py): AES-GCM with a fresh random 12-byte iv and
//     AAD = 8 zero bytes; the file is ciphertext || 16-byte tag, and the tag is its `cmac`.
//     A `raw` file is plaintext; its cmac is the first 16 bytes of its SHA-256.
//     `teaclave-file-128` (SGX protected files) is refused with a message that says so: the
//     Python client (protected_fs.py) reads and writes it.
//   - file keys (sealing.py wrap_key): HPKE (@hpke/core) sealed to the platform's X25519 key,
//     `info` binding the file id and schema.
//   - receipts (sealing.py verify_receipt): Ed25519 over RFC 8785 canonical JSON (canonicalize),
//     checked against the signing key published at /v1/platform/keys.
// Browsers expose WebCrypto in secure contexts only (https, or http://localhost).

import {
  BROWSER_SCHEMAS,
  KEY_WRAP_INFO as INFO_LABEL,
  RECEIPT_VERSION,
  SCHEMA_KEY_BYTES as SCHEMAS,
} from "./teaclave-constants.js";
import { Aes128Gcm, CipherSuite, HkdfSha256 } from "./vendor/node_modules/@hpke/core/esm/mod.js";
import { DhkemX25519HkdfSha256 } from "./vendor/node_modules/@hpke/dhkem-x25519/esm/mod.js";
import canonicalize from "./vendor/node_modules/canonicalize/lib/canonicalize.js";

export { INFO_LABEL, RECEIPT_VERSION, SCHEMAS };

const AAD = new Uint8Array(8);
const IV_BYTES = 12;
const TAG_BYTES = 16;
const EMPTY = new Uint8Array(0);
const utf8 = (text) => new TextEncoder().encode(text);

/** Any file that is not exactly what was encrypted with this key, iv and cmac. */
export class IntegrityError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "IntegrityError";
  }
}

/** A receipt that is malformed, signed by another key or altered, or not about what was asked. */
export class ReceiptError extends IntegrityError {
  constructor(message, options) {
    super(message, options);
    this.name = "ReceiptError";
  }
}

function subtle() {
  const api = globalThis.crypto?.subtle;
  if (!api) {
    throw new Error("WebCrypto is unavailable: serve the page over https or from localhost");
  }
  return api;
}

// ---- bytes ---------------------------------------------------------------------------------

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Standard base64 with padding, as Python's base64.b64encode. */
export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Strict base64, as Python's b64decode(validate=True); RangeError naming `what` otherwise. */
export function fromBase64(text, what = "the text") {
  if (typeof text !== "string" || text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new RangeError(`${what} is not base64`);
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex of either case (the service stores iv and cmac as hex); RangeError otherwise. */
export function fromHex(text, what = "the text") {
  if (typeof text !== "string" || text.length % 2 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new RangeError(`${what} is not hex`);
  }
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/** Equal bytes, compared without an early exit. */
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", bytes));
}

// ---- files ---------------------------------------------------------------------------------

function schemaKeyBytes(schema, Err = RangeError) {
  if (!Object.hasOwn(SCHEMAS, schema)) {
    throw new Err(`unknown schema ${JSON.stringify(schema)}: one of ${Object.keys(SCHEMAS)}`);
  }
  return SCHEMAS[schema];
}

/** RangeError for a schema the browser does not encrypt or decrypt (teaclave-file-128). */
function inBrowser(schema) {
  if (Object.hasOwn(SCHEMAS, schema) && !BROWSER_SCHEMAS.includes(schema)) {
    throw new RangeError(
      `${schema} files are not supported in the browser: encrypt and decrypt them with the ` +
        "Python client (teaclave-client), or use one of " +
        BROWSER_SCHEMAS.join(", "),
    );
  }
}

/** The key length of a schema; `Err` for an unknown schema or a key of another length. */
function keyBytes(schema, key, Err = RangeError) {
  const length = schemaKeyBytes(schema, Err);
  if (!(key instanceof Uint8Array) || key.length !== length) {
    throw new Err(`${schema} needs a ${length}-byte key, not ${key?.length} bytes`);
  }
  return length;
}

/** A fresh random key for `schema` (empty for `raw`). */
export function generateKey(schema) {
  return globalThis.crypto.getRandomValues(new Uint8Array(schemaKeyBytes(schema)));
}

/** A raw file's cmac: the first 16 bytes of its SHA-256. */
export async function rawCmac(data) {
  return (await sha256(data)).slice(0, TAG_BYTES);
}

async function aesKey(key, usage) {
  return subtle().importKey("raw", key, "AES-GCM", false, [usage]);
}

/** {data: ciphertext || tag, iv, cmac} under a fresh random iv; RangeError for a bad key. */
export async function encryptFile(schema, key, plaintext) {
  inBrowser(schema);
  if (!keyBytes(schema, key)) {
    return { data: plaintext.slice(), iv: new Uint8Array(0), cmac: await rawCmac(plaintext) };
  }
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const params = { name: "AES-GCM", iv, additionalData: AAD, tagLength: 8 * TAG_BYTES };
  const sealed = await subtle().encrypt(params, await aesKey(key, "encrypt"), plaintext);
  const data = new Uint8Array(sealed);
  return { data, iv, cmac: data.slice(-TAG_BYTES) };
}

/** The plaintext of file bytes (ciphertext || tag); if `cmac` is given the tag must equal it.
 * IntegrityError for anything but the exact file, key and iv: no plaintext is ever returned
 * unless the tag verified. */
export async function decryptFile(schema, key, iv, data, cmac) {
  if (!(data instanceof Uint8Array) || !(iv instanceof Uint8Array)) {
    throw new IntegrityError("the file and its iv must be bytes (Uint8Array)");
  }
  if (cmac !== undefined && cmac !== null && !(cmac instanceof Uint8Array)) {
    throw new IntegrityError("the cmac must be bytes (Uint8Array)");
  }
  inBrowser(schema);
  if (!keyBytes(schema, key, IntegrityError)) {
    if (cmac && !sameBytes(await rawCmac(data), cmac)) {
      throw new IntegrityError("the raw file's digest is not the registered cmac");
    }
    return data.slice();
  }
  if (data.length < TAG_BYTES || iv.length !== IV_BYTES) {
    throw new IntegrityError("the file is truncated or the iv is not 12 bytes");
  }
  if (cmac && !sameBytes(data.subarray(data.length - TAG_BYTES), cmac)) {
    throw new IntegrityError("the file's tag is not the registered cmac");
  }
  const params = { name: "AES-GCM", iv, additionalData: AAD, tagLength: 8 * TAG_BYTES };
  try {
    return new Uint8Array(await subtle().decrypt(params, await aesKey(key, "decrypt"), data));
  } catch (err) {
    throw new IntegrityError("authentication failed: wrong key or iv, or the file was altered", {
      cause: err,
    });
  }
}

// ---- HPKE ----------------------------------------------------------------------------------
// RFC 9180 from the vendored @hpke packages (vendor/README.md), the suite of sealing.HPKE_SUITE:
// base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM. The KEM is
// @hpke/dhkem-x25519's (X25519 in JS) rather than @hpke/core's (WebCrypto's X25519, missing from
// Safari before 17 and Chrome before 133), so that any browser with WebCrypto can wrap a key.

const HPKE = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

/** HPKE single-shot seal, base mode, to a raw 32-byte X25519 public key: {enc, ciphertext}.
 * `ikm` (the ephemeral key's seed) and `aad` exist for the RFC's test vectors; wrapKey uses a
 * fresh ephemeral key and no aad. RangeError for a key that is not a usable X25519 key. */
export async function hpkeSealBase(recipientPublicKey, info, plaintext, { aad, ikm } = {}) {
  subtle(); // the message that says why, before the library's own
  let sealed;
  try {
    const recipient = await HPKE.kem.deserializePublicKey(recipientPublicKey);
    const params = { recipientPublicKey: recipient, info, ekm: ikm };
    sealed = await HPKE.seal(params, plaintext, aad ?? EMPTY);
  } catch (err) {
    throw new RangeError(`cannot seal to the platform key: ${err.message}`, { cause: err });
  }
  return { enc: new Uint8Array(sealed.enc), ciphertext: new Uint8Array(sealed.ct) };
}

/** HPKE `info` for a file key: label \0 file id \0 schema (sealing._info). */
function keyInfo(fileId, schema) {
  const bad = typeof fileId !== "string" || !fileId || fileId.includes("\0");
  if (bad || !Object.hasOwn(SCHEMAS, schema)) {
    throw new RangeError(
      `cannot bind a key to file ${JSON.stringify(fileId)} with schema ${JSON.stringify(schema)}`,
    );
  }
  return utf8(`${INFO_LABEL}\0${fileId}\0${schema}`);
}

/** The file key sealed to the platform's published X25519 key (`sealing.public_key` of
 * /v1/platform/keys), bound to the file id and schema: base64 of enc || ciphertext, what
 * sealing.wrap_key gives. RangeError for a bad key, platform key, file id or schema. */
export async function wrapKey(key, platformPublicKeyB64, fileId, schema) {
  keyBytes(schema, key);
  const info = keyInfo(fileId, schema);
  const platformKey = fromBase64(platformPublicKeyB64, "the platform key");
  if (platformKey.length !== 32) {
    throw new RangeError(`the platform key has ${platformKey.length} bytes, not 32 (X25519)`);
  }
  const { enc, ciphertext } = await hpkeSealBase(platformKey, info, key);
  return toBase64(concatBytes(enc, ciphertext));
}

// ---- receipts ------------------------------------------------------------------------------

/** A short name for a public key: the first 16 hex digits of its SHA-256 (sealing.key_id). */
export async function keyId(publicKeyRaw) {
  return toHex(await sha256(publicKeyRaw)).slice(0, 16);
}

// What a receipt's signature covers, by the payload's `receipt_version` (sealing.RECEIPT_FORMATS):
// 2 is RFC 8785 canonical JSON; a payload without the field is v1, signed before receipts had
// versions over Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False).
// That text is RFC 8785's whenever every number is a safe integer and no key holds a character
// beyond U+FFFF (sorting by UTF-16 unit is then sorting by code point), as in every v1 receipt the
// platform made; any other v1 payload is refused here, not guessed at.

function checkableAsV1(value) {
  if (typeof value === "number") return Number.isSafeInteger(value);
  if (typeof value !== "object" || value === null) return true;
  const keys = Array.isArray(value) ? [] : Object.keys(value);
  return keys.every((k) => !/[\uD800-\uDFFF]/.test(k)) && Object.values(value).every(checkableAsV1);
}

/** The UTF-8 bytes the platform signed for `payload`; ReceiptError for an unknown version or a
 * payload that has no canonical form. */
export function receiptBody(payload) {
  const versioned = Object.hasOwn(payload, "receipt_version");
  const version = payload.receipt_version;
  if (versioned && version !== RECEIPT_VERSION) {
    const known = `known are ${RECEIPT_VERSION}, or none (v1)`;
    throw new ReceiptError(`unknown receipt version ${JSON.stringify(version)}: ${known}`);
  }
  if (!versioned && !checkableAsV1(payload)) {
    throw new ReceiptError(
      "a v1 receipt with a number other than a safe integer, or a key beyond U+FFFF: not checkable",
    );
  }
  try {
    return utf8(canonicalize(payload));
  } catch (err) {
    throw new ReceiptError(`the receipt's payload has no canonical JSON: ${err.message}`, {
      cause: err,
    });
  }
}

function sameJson(a, b) {
  try {
    return a !== undefined && b !== undefined && canonicalize(a) === canonicalize(b);
  } catch {
    return false;
  }
}

const ED25519 = { name: "Ed25519" };

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The receipt's payload if it is signed by the platform's signing key (`platformKeys`: the JSON
 * of GET /v1/platform/keys), as sealing.verify_receipt; then each field of `expected` (e.g.
 * {task_id, function_sha256, return_value, result_kind: 'ok', outputs}) must equal the
 * payload's. ReceiptError otherwise. */
export async function verifyReceipt(receipt, platformKeys, expected = {}) {
  let payload;
  let signature;
  let publicRaw;
  let publicKey;
  try {
    payload = receipt?.payload;
    if (!isObject(payload)) throw new TypeError("the payload is not an object");
    signature = fromBase64(receipt.signature, "the signature");
    publicRaw = fromBase64(platformKeys?.signing?.public_key, "the signing key");
    publicKey = await subtle().importKey("raw", publicRaw, ED25519, false, ["verify"]);
  } catch (err) {
    throw new ReceiptError(`malformed receipt or key: ${err.message}`, { cause: err });
  }
  const id = await keyId(publicRaw);
  if (receipt.key_id !== id) {
    throw new ReceiptError(`the receipt names key ${receipt.key_id}, not ${id}`);
  }
  const signed = receiptBody(payload);
  if (!(await subtle().verify(ED25519, publicKey, signature, signed))) {
    const format = `v${Object.hasOwn(payload, "receipt_version") ? payload.receipt_version : 1}`;
    const mismatch = "the receipt's signature does not match its contents";
    throw new ReceiptError(`${mismatch} (format ${format})`);
  }
  for (const [name, value] of Object.entries(expected)) {
    if (!sameJson(payload[name], value)) {
      const [got, want] = [payload[name], value].map((v) => JSON.stringify(v));
      throw new ReceiptError(`the receipt's ${name} is ${got}, not ${want}`);
    }
  }
  return { ...payload };
}
