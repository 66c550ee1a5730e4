// Run one teaclave-infer function (NAME.wasm) in any WebAssembly host, Node >= 20 or a browser,
// with Teaclave's file context exactly as the Python executor provides it
// (teaclave_infer/executor). No dependency: WebAssembly, WebCrypto (through teaclave-crypto.js),
// TextEncoder, and Workers (node:worker_threads in Node).
//
//   const fn = await loadFunction(wasmBytes);          // InvalidModuleError, ForbiddenImportError
//   const result = await runFunction(fn, {
//     arguments: { input_img: 'img', scores: 'out' },     // argv: sorted key/value pairs
//     inputs: { img: npyBytes, weights: { data, schema: 'aes-gcm-128', key, iv, cmac } },
//     outputs: ['out'],
//     limits: { deadlineMs: 30000, memoryBytes: 256 << 20, outputBytes: 64 << 20 },
//   });
//   result -> {ok, kind, returnValue, outputs: {out: Uint8Array}, message, trapCode, timings}
//
// API
//   loadFunction(bytes: ArrayBuffer | ArrayBufferView) -> Promise<FunctionModule>
//     Copies the bytes, checks the ABI (imports only env.teaclave_* with their exact types;
//     exports `entrypoint (i32, i32) -> i32` and `memory`) and compiles. Throws
//     InvalidModuleError or ForbiddenImportError (a subclass) naming the offending item.
//   runFunction(fnOrBytes, {arguments, inputs, outputs, limits, worker}) -> Promise<Result>
//     Every way the call can end is a result kind: 'ok', 'timeout', 'memory_limit',
//     'output_limit', 'stack_overflow', 'trap', 'invalid_module', 'forbidden_import' (the Python
//     ResultKind) and 'integrity' (an encrypted input that does not decrypt: the service's name
//     for it). `returnValue` and `outputs` are set for 'ok' only; `timings` are seconds per stage.
//     Throws (before running anything) only for a bad request: LimitError for an input over
//     limits.maxInputBytes, RangeError for invalid limits, TypeError for malformed options.
//   packArguments(arguments) -> Uint8Array[]   argv as the executor packs it (abi.pack_arguments)
//   DEFAULT_LIMITS, RESULT_KINDS, FunctionModule, InvalidModuleError, ForbiddenImportError,
//   LimitError
//
// Inputs: {fileId: Uint8Array} plaintext, or {fileId: {data, schema, key, iv, cmac?}} encrypted
// (teaclave-crypto.js's decryptFile: AES-GCM, AAD 8 zero bytes, ciphertext || tag). An encrypted
// input is decrypted only if the function opens it: the open stops the call, the input is
// decrypted here (in the calling thread: keys never reach the sandbox's thread) and the call is
// replayed from the start with a fresh instance. The guest can observe nothing but the five file
// functions, so the replay is identical up to that open; the cost is the work done before it.
// A wrong key, iv or cmac ends the call as 'integrity', naming the input; no outputs. Keys and
// plaintexts are held only for the duration of the call.
//
// Limits: the memory cap is written into the module itself (its memory's maximum lowered to the
// cap in 64 KiB pages), so memory.grow past it returns -1 in the guest; a module whose initial
// memory is over the cap, or a failing call near the cap, is 'memory_limit' (as the executor's
// at_memory_cap). Tables count against memoryBytes as in the executor (_limits.py): memory gets
// whole pages leaving at least 1/256, and up to MAX_TABLES tables share the rest at
// TABLE_ELEMENT_BYTES an element (V8 pays ~27 bytes for a funcref element: measured, RSS growth
// of a 10M-element table in Node 20; unbounded, V8 allows 10M elements a table and many tables,
// 1.2 GiB for 20 of them). Each table's maximum is written into the module, so table.grow past it
// returns -1 in the guest; more tables, or a table's initial size over its share, is
// 'memory_limit' before running. Unlike the executor, which rewrites table.grow into a guard that
// ends the call as 'memory_limit' (_tables.py), here the guest sees that -1 and goes on.
// The deadline needs a Worker: with worker: true (the default where Workers exist) the call
// runs in one (Node: worker_threads) that is terminated at the deadline. With
// worker: false the call runs in this thread and the deadline is only enforced by refusing: a
// host call after it stops the call, and a call that returns after it is 'timeout'; a guest
// that loops without calling the host is never stopped. The deadline covers instantiation,
// decryption and every replay. Non-string `arguments` are written as RFC 8785 canonical JSON, as
// the executor writes them (abi.argument_text), so 2.0 and 2 are both `2` on either side.
// Not enforced here, unlike the executor: the wasm stack size (the engine's own applies), fuel,
// and the profiles' feature sets (the engine's features apply; shared or 64-bit memories and
// multi-memory are refused).

import {
  ForbiddenImportError,
  InvalidModuleError,
  MAX_PAGES,
  MAX_TABLE_ELEMENTS,
  checkAbi,
  ownMemory,
  packArguments,
  parseModule,
  withCaps,
} from './teaclave-abi.js';
import {
  DEFAULT_LIMITS,
  FAILURE_KIND,
  MAX_HANDLES,
  MAX_TABLES,
  RESULT_KIND,
  TABLE_ELEMENT_BYTES,
} from './teaclave-constants.js';
import { decryptFile } from './teaclave-crypto.js';
import { PAGE, WORKER_NAME, attempt } from './teaclave-host-worker.js';

// The executor's defaults and table pricing (teaclave_client/vocabulary/limits.py says why).
export { DEFAULT_LIMITS, MAX_TABLES, TABLE_ELEMENT_BYTES };
export { ForbiddenImportError, InvalidModuleError, packArguments };

/** memoryBytes split as the executor splits it: whole pages for linear memory, at least 1/256
 * left for the tables, each table's share in elements. */
export function memoryShares(memoryBytes) {
  const linear = Math.floor((memoryBytes - Math.floor(memoryBytes / 256)) / PAGE) * PAGE;
  const tableElements = Math.floor((memoryBytes - linear) / (MAX_TABLES * TABLE_ELEMENT_BYTES));
  const capPages = Math.min(MAX_PAGES, linear / PAGE);
  return { capPages, tableElements: Math.min(MAX_TABLE_ELEMENTS, tableElements) };
}

export const RESULT_KINDS = Object.freeze([...Object.values(RESULT_KIND), FAILURE_KIND.INTEGRITY]);


/** The request breaks a limit before anything runs (an input too large). */
export class LimitError extends Error {
  name = 'LimitError';
}

const isNode = typeof process !== 'undefined' && process.versions?.node !== undefined;
const WORKERS_EXIST = isNode || typeof Worker !== 'undefined';
const WORKER_URL = new URL('./teaclave-host-worker.js', import.meta.url);
const now = () => performance.now();


async function compile(bytes) {
  try {
    return await WebAssembly.compile(bytes);
  } catch (err) {
    throw new InvalidModuleError(`invalid module: ${err.message}`);
  }
}

function copyBytes(value, what) {
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
  }
  throw new TypeError(`${what} must be an ArrayBuffer or a Uint8Array`);
}

/** A checked function; compiled once per memory cap. Made by loadFunction. */
export class FunctionModule {
  #bytes;
  #layout;
  #compiled = new Map(); // memoryBytes -> Promise<WebAssembly.Module | string>

  constructor(bytes, layout) {
    this.#bytes = bytes;
    this.#layout = layout;
    this.initialMemoryBytes = (ownMemory(layout)?.min ?? 0) * PAGE;
    this.imports = layout.imports.map((i) => `${i.module}.${i.name}`);
  }

  /** The compiled module whose memory and tables cannot grow past their shares of
   * `memoryBytes`; a string saying what is over its share before anything runs otherwise. */
  compiledFor(memoryBytes) {
    if (!this.#compiled.has(memoryBytes)) {
      const caps = { ...memoryShares(memoryBytes), maxTables: MAX_TABLES };
      const capped = withCaps(this.#bytes, this.#layout, caps);
      if (this.#compiled.size >= 4) this.#compiled.delete(this.#compiled.keys().next().value);
      const compiled = typeof capped === 'string' ? Promise.resolve(capped) : compile(capped);
      this.#compiled.set(memoryBytes, compiled);
    }
    return this.#compiled.get(memoryBytes);
  }
}

/** The function checked and compiled (see the header); InvalidModuleError or
 * ForbiddenImportError naming what is wrong. */
export async function loadFunction(bytes) {
  const copy = copyBytes(bytes, 'the function');
  const layout = parseModule(copy);
  const fn = new FunctionModule(copy, layout);
  // Compiling validates; a module over the default caps is compiled uncapped, only to validate.
  if (typeof (await fn.compiledFor(DEFAULT_LIMITS.memoryBytes)) === 'string') await compile(copy);
  checkAbi(layout);
  return fn;
}


// ---- the request -------------------------------------------------------------------------------

function checkedLimits(given = {}) {
  const unknown = Object.keys(given).filter((k) => !Object.hasOwn(DEFAULT_LIMITS, k));
  if (unknown.length) throw new RangeError(`unknown limits: ${unknown.join(', ')}`);
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const limits = { ...DEFAULT_LIMITS, ...set };
  const { deadlineMs, maxHandles } = limits;
  const checks = {
    deadlineMs: deadlineMs > 0 && deadlineMs <= 0x7fff_ffff, // setTimeout's longest delay
    memoryBytes: limits.memoryBytes > 0,
    outputBytes: limits.outputBytes >= 0,
    maxHandles: Number.isInteger(maxHandles) && maxHandles >= 0 && maxHandles <= MAX_HANDLES,
    maxInputBytes: limits.maxInputBytes >= 0,
  };
  const bad = Object.keys(checks).filter((k) => typeof limits[k] !== 'number' || !checks[k]);
  if (bad.length) throw new RangeError(`invalid limits: ${bad.join(', ')}`);
  return limits;
}

/** fid -> {plain: Uint8Array} or {sealed: {data, schema, key, iv, cmac}}; LimitError for an input
 * over the limit. Plaintexts are not copied: the call only reads them. */
function checkedInputs(inputs, limits) {
  const files = new Map();
  for (const [fid, value] of Object.entries(inputs)) {
    const sealed = value !== null && typeof value === 'object' && !ArrayBuffer.isView(value);
    const data = sealed ? value.data : value;
    if (!(data instanceof Uint8Array)) throw new TypeError(`input ${fid}: not a Uint8Array`);
    if (data.length > limits.maxInputBytes) {
      const over = `over the limit of ${limits.maxInputBytes}`;
      throw new LimitError(`input '${fid}' is ${data.length} bytes, ${over}`);
    }
    files.set(fid, sealed ? { sealed: value } : { plain: data });
  }
  return files;
}

// ---- where the call runs ---------------------------------------------------------------------

/** This thread: the deadline is checked by the host functions and after the call. */
class ThreadSandbox {
  attempt(module, request, deadlineAt) {
    return attempt(module, { ...request, deadlineAt });
  }

  close() {}
}

/** A Worker running teaclave-host-worker.js, terminated by close() (at the deadline too). */
class WorkerSandbox {
  static async start() {
    const sandbox = new WorkerSandbox();
    if (isNode) {
      const { Worker: NodeWorker } = await import('node:worker_threads');
      const worker = new NodeWorker(WORKER_URL, { workerData: { [WORKER_NAME]: true } });
      worker.on('message', (m) => sandbox.receive(m));
      worker.on('error', (err) => sandbox.fail(err));
      worker.on('exit', (code) => sandbox.fail(new Error(`the worker exited with code ${code}`)));
      sandbox.worker = worker;
    } else {
      const worker = new Worker(WORKER_URL, { type: 'module', name: WORKER_NAME });
      worker.onmessage = (e) => sandbox.receive(e.data);
      const failed = (why) => sandbox.fail(new Error(`the worker failed: ${why}`));
      worker.onerror = (e) => failed(e.message ?? 'it could not be loaded');
      worker.onmessageerror = () => failed('a message from it could not be read');
      sandbox.worker = worker;
    }
    await sandbox.next(); // {ready: true} once its message handler is installed
    sandbox.worker.unref?.(); // an idle Worker (a spare) does not keep Node running
    return sandbox;
  }

  next() {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  receive(message) {
    const pending = this.pending;
    this.pending = null;
    if (message.error === undefined) pending?.resolve(message.outcome);
    else pending?.reject(new Error(`the worker failed: ${message.error}`));
  }

  fail(err) {
    const pending = this.closed ? null : this.pending; // closed by us: nobody waits any more
    this.pending = null;
    this.closed = true;
    if (err?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      const kind = RESULT_KIND.MEMORY_LIMIT;
      const message = `${kind}: the worker ran out of memory: ${err.message}`;
      pending?.resolve({ kind, message, trapCode: null, timings: {} });
    } else {
      pending?.reject(err);
    }
  }

  attempt(module, request) {
    const outcome = this.next();
    this.worker.ref?.();
    this.worker.postMessage({ module, request });
    return outcome;
  }

  close() {
    if (!this.closed) this.worker.terminate();
    this.closed = true;
  }
}

// Each call gets a Worker of its own that has run nothing before, and it is terminated after
// the call. One is started ahead for the next call, so that a call does not wait for a Worker to
// load its script (tens of ms in a browser).
let spare = null;

function freshWorker() {
  const ready = spare ?? WorkerSandbox.start();
  spare = WorkerSandbox.start();
  spare.catch(() => (spare = null)); // a spare that failed to start is not used
  return ready;
}

// ---- the call -------------------------------------------------------------------------------

function result(kind, message, fields = {}) {
  const ok = kind === RESULT_KIND.OK;
  return {
    ok,
    kind,
    returnValue: ok ? fields.returnValue : null,
    outputs: ok ? Object.fromEntries(fields.outputs) : {},
    message,
    trapCode: fields.trapCode ?? null,
    timings: fields.timings ?? {},
  };
}

function addTimings(total, more = {}) {
  for (const [stage, seconds] of Object.entries(more)) total[stage] = (total[stage] ?? 0) + seconds;
}

/** Attempts until one ends without needing a sealed input; decrypts each one it needs. */
async function callWithReplay(sandbox, module, request, files, limits, timings) {
  const inputs = new Map([...files].map(([fid, f]) => [fid, f.plain ?? null]));
  const seconds = limits.deadlineMs / 1000;
  const kind = RESULT_KIND.TIMEOUT;
  const TIMEOUT = { kind, message: `${kind}: the deadline of ${seconds} s passed` };
  const deadlineAt = now() + limits.deadlineMs;
  let timer;
  const expired = new Promise((resolve) => {
    timer = setTimeout(() => resolve(TIMEOUT), limits.deadlineMs);
  });
  try {
    for (;;) {
      const call = sandbox.attempt(module, { ...request, inputs: [...inputs] }, deadlineAt);
      const outcome = await Promise.race([call, expired]);
      addTimings(timings, outcome.timings);
      if (outcome.needs === undefined) {
        return result(outcome.kind, outcome.message, { ...outcome, timings });
      }
      const { data, schema, key, iv, cmac } = files.get(outcome.needs).sealed;
      const start = now();
      const opened = decryptFile(schema, key, iv, data, cmac ?? undefined).then(
        (plaintext) => ({ plaintext }),
        (err) => ({ failed: `${FAILURE_KIND.INTEGRITY}: input ${outcome.needs}: ${err.message}` }),
      );
      const decrypted = await Promise.race([opened, expired]);
      addTimings(timings, { decrypt: (now() - start) / 1000 });
      if (decrypted === TIMEOUT) return result(TIMEOUT.kind, TIMEOUT.message, { timings });
      if (decrypted.failed) return result(FAILURE_KIND.INTEGRITY, decrypted.failed, { timings });
      inputs.set(outcome.needs, decrypted.plaintext);
    }
  } finally {
    clearTimeout(timer);
  }
}

/** One call of the function's entrypoint; every way it can end is a result kind (see the header).
 * Throws only for a request that is wrong before anything runs. */
export async function runFunction(fnOrBytes, options = {}) {
  const { arguments: args = {}, inputs = {}, outputs = [], limits: given } = options;
  const worker = options.worker ?? WORKERS_EXIST;
  const limits = checkedLimits(given);
  const argv = packArguments(args);
  const files = checkedInputs(inputs, limits);
  if (!Array.isArray(outputs) || outputs.some((o) => typeof o !== 'string')) {
    throw new TypeError('outputs must be an array of file ids');
  }
  if (worker && !WORKERS_EXIST) throw new TypeError('worker: true, but this host has no Workers');
  const timings = {};
  const start = now();
  let module;
  let fn = fnOrBytes;
  try {
    if (!(fn instanceof FunctionModule)) fn = await loadFunction(fnOrBytes);
    module = await fn.compiledFor(limits.memoryBytes);
  } catch (err) {
    if (!(err instanceof InvalidModuleError)) throw err;
    const forbidden = err instanceof ForbiddenImportError;
    const kind = forbidden ? RESULT_KIND.FORBIDDEN_IMPORT : RESULT_KIND.INVALID_MODULE;
    return result(kind, `${kind}: ${err.message}`, { timings });
  }
  timings.compile = (now() - start) / 1000;
  if (typeof module === 'string') {
    const message = `${RESULT_KIND.MEMORY_LIMIT}: ${limits.memoryBytes} bytes: ${module}`;
    return result(RESULT_KIND.MEMORY_LIMIT, message, { timings });
  }
  const request = { argv, outputs, limits: { ...limits } };
  const sandbox = worker ? await freshWorker() : new ThreadSandbox();
  try {
    return await callWithReplay(sandbox, module, request, files, limits, timings);
  } finally {
    sandbox.close();
  }
}
