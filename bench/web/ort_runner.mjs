// onnxruntime-web's wasm backend in Node, driven by bench/models.py over JSON lines.
//
//   node bench/web/ort_runner.mjs        (after `npm install` in bench/web)
//
// One request per stdin line, one reply per stdout line, in order. Every reply has "ok"; a failed
// request gets {"ok": false, "error": "..."} and the runner goes on. Requests:
//   {"op": "info"}                          -> versions and the wasm flags in force
//   {"op": "load", "key": K, "model": PATH, "inputs": {NAME: {"dims": [..], "path": RAW_F32}}}
//       (or "b64": base64 of the raw little-endian float32 data instead of "path")
//   {"op": "run", "key": K, "calls": N}     -> {"times_ms": [...]}: each session.run() timed
//                                              inside Node with performance.now()
//   {"op": "output", "key": K}              -> {"outputs": {NAME: {"dims": [..], "b64": ...}}}
//   {"op": "close", "key": K}               -> releases the session
//   {"op": "quit"}
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

import * as ort from "onnxruntime-web";

// stdout carries the protocol only: anything the library logs goes to stderr.
console.log = console.info = console.warn = console.error;

ort.env.logLevel = "error";
ort.env.wasm.numThreads = 1; // one thread, like ort-1t: no worker threads
ort.env.wasm.proxy = false; // run on this thread: no worker hop inside the timed call
// In 1.30 this only makes the feature check ask for fixed-width SIMD (its default): the package
// ships SIMD builds only (ort-wasm-simd-threaded.wasm).
ort.env.wasm.simd = true;

const sessions = new Map(); // key -> {session, feeds}

function floats(spec) {
  const bytes = spec.path !== undefined ? readFileSync(spec.path) : Buffer.from(spec.b64, "base64");
  const copy = new Uint8Array(bytes); // aligned, owned
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

async function load({ key, model, inputs }) {
  const options = {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
    logSeverityLevel: 3, // errors only: not the light model's unused initializer
  };
  const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(model)), options);
  const feeds = {};
  for (const [name, spec] of Object.entries(inputs)) {
    feeds[name] = new ort.Tensor("float32", floats(spec), spec.dims);
  }
  sessions.get(key)?.session.release();
  sessions.set(key, { session, feeds });
  return { inputs: session.inputNames, outputs: session.outputNames };
}

function lookup(key) {
  const entry = sessions.get(key);
  if (!entry) throw new Error(`no session loaded under key ${JSON.stringify(key)}`);
  return entry;
}

async function run({ key, calls }) {
  const { session, feeds } = lookup(key);
  const times = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await session.run(feeds);
    times.push(performance.now() - start);
  }
  return { times_ms: times };
}

async function output({ key }) {
  const { session, feeds } = lookup(key);
  const results = await session.run(feeds);
  const outputs = {};
  for (const [name, tensor] of Object.entries(results)) {
    const data = tensor.data;
    const b64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
    outputs[name] = { dims: Array.from(tensor.dims), type: tensor.type, b64 };
  }
  return { outputs };
}

async function close({ key }) {
  await sessions.get(key)?.session.release();
  sessions.delete(key);
  return {};
}

function info() {
  const { numThreads, simd, proxy } = ort.env.wasm;
  const web = ort.env.versions?.web ?? "unknown";
  return { onnxruntime_web: web, node: process.versions.node, numThreads, simd, proxy };
}

const handlers = { info, load, run, output, close };

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    const request = JSON.parse(line);
    if (request.op === "quit") break;
    const handler = handlers[request.op];
    if (!handler) throw new Error(`unknown op ${JSON.stringify(request.op)}`);
    reply = { ok: true, ...(await handler(request)) };
  } catch (err) {
    reply = { ok: false, error: String(err?.stack ?? err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
for (const { session } of sessions.values()) await session.release();
process.exit(0);
