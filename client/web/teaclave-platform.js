// The platform's HTTP API from a browser (or Node >= 20): log in, encrypt and register files,
// run a task through its lifecycle, verify the receipt and decrypt the outputs. The same steps
// as the Python SDK (client/teaclave_client/sdk.py), with fetch and WebCrypto: file keys are made
// here, sealed to the platform key (HPKE) before they leave, and never stored. A run is six
// requests: upload, register the input and the output, the task in one request, one long-poll
// for its end, then the output's content.
//
//   const platform = new Platform("");              // "" = this page's origin
//   await platform.login("alice", "...");
//   const run = await platform.runTask(fn, { image: npyBytes }, ["scores"]);
//   run.outputs.scores                               // plaintext, its tag checked by the receipt

import {
  BEFORE_INVOKE_STATES,
  DEFAULT_SCHEMA as SCHEMA,
  ENDED_STATES,
  RESULT_KIND,
  TASK_STATE,
} from "./teaclave-constants.js";
import {
  decryptFile,
  encryptFile,
  generateKey,
  verifyReceipt,
  wrapKey,
} from "./teaclave-crypto.js";

export const ENDED = new Set(ENDED_STATES);
const BEFORE_INVOKE = new Set(BEFORE_INVOKE_STATES);
const MAX_WAIT_S = 60; // the longest long-poll the platform holds

export class PlatformError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "PlatformError";
    this.status = status;
  }
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
const newId = () => hex(crypto.getRandomValues(new Uint8Array(16)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Platform {
  constructor(base = "") {
    this.base = base.replace(/\/$/, "");
    this.token = null;
    this.user = null;
    this.keysCache = null;
  }

  async request(method, path, { json, body, headers = {}, as = "json" } = {}) {
    const init = { method, headers: { ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(this.base + path, init);
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const problem = await response.json();
        detail = `${problem.title ?? ""}: ${problem.detail ?? ""}`;
      } catch {
        // not problem+json: the status text says enough
      }
      throw new PlatformError(`${method} ${path}: ${response.status} ${detail}`, response.status);
    }
    if (as === "bytes") return new Uint8Array(await response.arrayBuffer());
    return response.status === 204 ? null : response.json();
  }

  async login(username, password) {
    const token = await this.request("POST", "/v1/auth/login", { json: { username, password } });
    this.token = token.token;
    this.user = token.user;
    return this.user;
  }

  async logout() {
    if (this.token) await this.request("POST", "/v1/auth/logout");
    this.token = this.user = null;
  }

  async platformKeys() {
    this.keysCache ??= await this.request("GET", "/v1/platform/keys");
    return this.keysCache;
  }

  async functions() {
    return (await this.request("GET", "/v1/functions?scope=allowed&limit=500")).items;
  }

  manifest(functionId) {
    return this.request("GET", `/v1/functions/${functionId}/manifest`);
  }

  // -- in-browser runs: what the owner lets a browser have -----------------------------------

  // {function, manifest, wasm, weights: null | {data, schema, key, iv, cmac}}; a PlatformError
  // with status 403 when the owner does not let the function run in browsers.
  async browserBundle(functionId) {
    const bundle = await this.request("GET", `/v1/functions/${functionId}/browser`);
    const wasm = await this.request("GET", `/v1/functions/${functionId}/payload`, { as: "bytes" });
    let weights = null;
    if (bundle.weights) {
      const data = await this.request("GET", `/v1/functions/${functionId}/browser/weights`, {
        as: "bytes",
      });
      const w = bundle.weights;
      const key = Uint8Array.from(atob(w.key), (c) => c.charCodeAt(0));
      weights = { data, schema: w.schema, key, iv: unhex(w.iv), cmac: unhex(w.cmac) };
    }
    return { function: bundle.function, manifest: bundle.manifest, wasm, weights };
  }

  // -- platform runs -------------------------------------------------------------------------

  async putInput(plaintext) {
    const key = generateKey(SCHEMA);
    const sealed = await encryptFile(SCHEMA, key, plaintext);
    const blob = await this.request("POST", "/v1/blobs", {
      body: sealed.data,
      headers: { "Content-Type": "application/octet-stream" },
    });
    const id = newId();
    const sealing = (await this.platformKeys()).sealing.public_key;
    const file = await this.request("POST", "/v1/files/inputs", {
      json: {
        id,
        url: blob.url,
        schema: SCHEMA,
        iv: hex(sealed.iv),
        cmac: hex(sealed.cmac),
        owners: [],
        wrapped_key: await wrapKey(key, sealing, id, SCHEMA),
      },
    });
    return { file, key };
  }

  async newOutput() {
    const key = generateKey(SCHEMA);
    const id = newId();
    const sealing = (await this.platformKeys()).sealing.public_key;
    const file = await this.request("POST", "/v1/files/outputs", {
      json: {
        id,
        url: "blob:",
        schema: SCHEMA,
        owners: [],
        wrapped_key: await wrapKey(key, sealing, id, SCHEMA),
      },
    });
    return { file, key };
  }

  // Waits until the task ends: long-polls of up to a minute each, which the platform answers as
  // soon as the task ends (no timer loop). Past the platform's bound on waits (a 429), it backs
  // off and asks again.
  async wait(taskId, { timeoutMs = 120_000, onState = () => {} } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (let pause = 500; ; ) {
      const left = Math.max(0, Math.min(MAX_WAIT_S, (deadline - Date.now()) / 1000));
      let task;
      try {
        task = await this.request("GET", `/v1/tasks/${taskId}?wait=${left.toFixed(3)}`);
      } catch (err) {
        if (err.status !== 429 || left * 1000 < pause) throw err;
        await sleep(pause);
        pause = Math.min(pause * 2, 8000);
        continue;
      }
      onState(task.state);
      if (ENDED.has(task.state)) return task;
      if (Date.now() >= deadline) {
        throw new PlatformError(`task ${taskId} is still ${task.state} after ${timeoutMs} ms`);
      }
    }
  }

  // Runs `fn` (a function as listed) on plaintext inputs (slot -> bytes), the caller owning every
  // input and output: encrypt, upload, register; create, assign, approve and invoke in one
  // request; wait (a long-poll); then verify the receipt and decrypt.
  // {task, returnValue, outputs: slot -> bytes, receipt}.
  async runTask(fn, inputs, outputSlots, { onState = () => {}, timeoutMs } = {}) {
    const me = this.user.id;
    const given = {};
    for (const [slot, data] of Object.entries(inputs)) given[slot] = await this.putInput(data);
    const made = {};
    for (const slot of outputSlots) made[slot] = await this.newOutput();
    const defaults = Object.fromEntries(
      fn.arguments.filter((a) => a.overwritable).map((a) => [a.name, a.default ?? ""]),
    );
    const ownership = (slots) => slots.map((name) => ({ name, owners: [me] }));
    onState("Creating");
    // One request: create, assign the files, approve and invoke, in one transaction. It stages
    // the task only when nobody else must act (the caller owns every slot and the function
    // needs no other approval); otherwise it stops there and says why.
    const ids = (files) => Object.fromEntries(Object.entries(files).map(([s, f]) => [s, f.file.id]));
    let task = await this.request("POST", "/v1/tasks", {
      json: {
        function_id: fn.id,
        arguments: defaults,
        inputs_ownership: ownership(Object.keys(given)),
        outputs_ownership: ownership(outputSlots),
        assign: { inputs: ids(given), outputs: ids(made) },
        approve: true,
        invoke: true,
      },
    });
    if (BEFORE_INVOKE.has(task.state)) {
      throw new PlatformError(`task ${task.id}: ${task.stopped ?? `it is ${task.state}`}`);
    }
    task = await this.wait(task.id, { onState, timeoutMs });
    if (task.state !== TASK_STATE.FINISHED) {
      const result = task.result ?? {};
      throw new PlatformError(`task ${task.id} ${task.state}: ${result.message ?? result.kind ?? ""}`);
    }
    const result = task.result;
    const receipt = await verifyReceipt(result.receipt, await this.platformKeys());
    checkReceipt(receipt, task, result);
    for (const [slot, input] of Object.entries(given)) {
      if ((receipt.inputs?.[slot] ?? "").toLowerCase() !== input.file.cmac.toLowerCase()) {
        throw new PlatformError(`the receipt's input ${slot} is not the file given`);
      }
    }
    const outputs = {};
    for (const [slot, out] of Object.entries(result.outputs ?? {})) {
      if (!made[slot]) continue;
      if (out.file_id !== made[slot].file.id) {
        throw new PlatformError(`output ${slot}: not the file this page registered`);
      }
      // No request for the file's record: the result holds its iv, the signed receipt its
      // cmac, and decrypting checks the bytes against that cmac.
      const data = await this.request("GET", `/v1/files/${out.file_id}/content`, { as: "bytes" });
      outputs[slot] = await decryptFile(
        SCHEMA, made[slot].key, unhex(out.iv), data, unhex(receipt.outputs[slot]),
      );
    }
    return { task, returnValue: result.return_value, outputs, receipt };
  }
}

// The signed receipt must speak of this very task and result (the SDK's _check_receipt).
export function checkReceipt(payload, task, result) {
  const expected = {
    task_id: task.id,
    function_sha256: task.function_sha256,
    return_value: result.return_value,
    result_kind: RESULT_KIND.OK,
  };
  for (const [name, value] of Object.entries(expected)) {
    if (payload[name] !== value) {
      throw new PlatformError(`the receipt's ${name} is ${payload[name]}, not ${value}`);
    }
  }
  const recorded = Object.fromEntries(
    Object.entries(result.outputs ?? {}).map(([slot, out]) => [slot, out.cmac]),
  );
  const named = payload.outputs ?? {};
  const same =
    Object.keys(named).length === Object.keys(recorded).length &&
    Object.entries(recorded).every(([slot, cmac]) => named[slot] === cmac);
  if (!same) throw new PlatformError("the receipt's outputs are not the task's outputs");
}
