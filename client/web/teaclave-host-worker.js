// The sandbox side of teaclave-host.js: Teaclave's file context, argv placement and one call of
// `entrypoint`, with the semantics of the Python executor (teaclave_infer/executor/_files.py,
// _run.py). teaclave-host.js calls `attempt` in its own thread (worker: false) or loads this file
// as a Worker (worker: true), where it answers {module, request} messages with {outcome}.
//
// File context: handles count from 1 per call and are never reused; write handles are
// 0x4000_0000 | n; at most `maxHandles` per call. Every wrong use is -1 to the guest, never an
// exception. Outputs exist only once closed, and the caller keeps them only if the call succeeds.
//
// Encrypted inputs stay sealed (null here) until the guest opens one: that host call then stops
// the call (`Stop`), the main side decrypts the input and calls again from the start. The guest's
// only imports are these five functions, so a call replays identically up to that point.

import {
  IMPORT_ERROR as ERROR,
  IMPORT_MODULE,
  MAX_FILE_ID_BYTES as MAX_ID,
  RESULT_KIND,
  WRITE_FLAG,
} from './teaclave-constants.js';

export { WRITE_FLAG };
export const PAGE = 65536;
const MIB = 1 << 20;
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true }); // replaces bad bytes, as Python's

const now = () => performance.now();

/** Why a call stops from inside a host function: `needs` a sealed input, or the in-thread
 * deadline passed. Recorded before it unwinds, so a guest that catches it changes nothing. */
class Stop extends Error {
  constructor(reason) {
    super(reason.needs !== undefined ? `needs input ${reason.needs}` : 'deadline');
    Object.assign(this, reason);
  }
}

/** Bounds-checked view of the guest's memory at one moment (memory.grow replaces the buffer,
 * so take a new view per host call). Pointers arrive as signed i32. */
class GuestMemory {
  constructor(memory) {
    this.bytes = memory ? new Uint8Array(memory.buffer) : new Uint8Array(0); // null: start function
  }

  /** guest [ptr, ptr + length) as a view, or null when it runs past the memory. */
  span(ptr, length) {
    ptr >>>= 0;
    if (length < 0 || ptr + length > this.bytes.length) return null;
    return this.bytes.subarray(ptr, ptr + length);
  }

  cString(ptr) {
    ptr >>>= 0;
    if (ptr >= this.bytes.length) return null;
    const raw = this.bytes.subarray(ptr, ptr + Math.min(MAX_ID, this.bytes.length - ptr));
    const end = raw.indexOf(0);
    return end >= 0 ? utf8.decode(raw.subarray(0, end)) : null;
  }
}

/** The inputs granted to one call (fid -> bytes, null while sealed), and the outputs it writes. */
class FileContext {
  constructor(inputs, outputs, maxHandles, outputBytes) {
    this.inputs = inputs;
    this.outputIds = new Set(outputs.filter((fid) => !inputs.has(fid))); // never an input id
    this.maxHandles = maxHandles;
    this.outputBudget = outputBytes;
    this.handles = new Map();
    this.issued = 0;
    this.written = new Map();
    this.outputLimitHit = false;
  }

  issue(entry) {
    if (this.issued >= this.maxHandles) return ERROR;
    this.issued += 1;
    const handle = this.issued | (entry.write ? WRITE_FLAG : 0);
    this.handles.set(handle, entry);
    return handle;
  }

  openInput(fid) {
    if (fid === null || !this.inputs.has(fid)) return ERROR;
    // Decrypt only what is opened, and only when a handle is left to open it with.
    if (this.inputs.get(fid) === null && this.issued < this.maxHandles) {
      throw new Stop({ needs: fid });
    }
    return this.issue({ fid, write: false, position: 0 });
  }

  createOutput(fid) {
    if (fid === null || !this.outputIds.has(fid) || this.written.has(fid)) return ERROR;
    for (const open of this.handles.values()) if (open.write && open.fid === fid) return ERROR;
    return this.issue({ fid, write: true, chunks: [] });
  }

  read(handle, dst) {
    const entry = this.handles.get(handle);
    if (entry === undefined || entry.write || dst === null) return ERROR;
    const chunk = this.inputs.get(entry.fid).subarray(entry.position, entry.position + dst.length);
    dst.set(chunk);
    entry.position += chunk.length;
    return chunk.length;
  }

  write(handle, src) {
    const entry = this.handles.get(handle);
    if (entry === undefined || !entry.write || src === null) return ERROR;
    if (src.length > this.outputBudget) {
      this.outputLimitHit = true;
      return ERROR;
    }
    this.outputBudget -= src.length;
    entry.chunks.push(src.slice());
    return src.length;
  }

  close(handle) {
    const entry = this.handles.get(handle);
    if (entry === undefined) return ERROR;
    this.handles.delete(handle);
    if (entry.write) this.written.set(entry.fid, concat(entry.chunks));
    return 0;
  }
}

function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** The five imports, acting on `call` (its files, its memory once instantiated). */
function hostFunctions(call) {
  const guarded = (fn) => (...args) => {
    if (call.stop) throw call.stop;
    if (call.deadlineAt !== undefined && now() > call.deadlineAt) {
      call.stop = new Stop({ timeout: true });
      throw call.stop;
    }
    try {
      return fn(...args) | 0;
    } catch (err) {
      if (!(err instanceof Stop)) return ERROR; // a host error is the guest's -1, as in Python
      call.stop = err;
      throw err;
    }
  };
  const { files } = call;
  const guest = () => new GuestMemory(call.memory);
  return {
    teaclave_open_input: guarded((p) => files.openInput(guest().cString(p))),
    teaclave_create_output: guarded((p) => files.createOutput(guest().cString(p))),
    teaclave_read_file: guarded((fd, p, n) => files.read(fd, guest().span(p, n))),
    teaclave_write_file: guarded((fd, p, n) => files.write(fd, guest().span(p, n))),
    teaclave_close_file: guarded((fd) => files.close(fd)),
  };
}

/** Grows memory, writes the pointer array then the NUL-terminated strings there; returns the
 * array's address. memory.grow throws a RangeError when the cap refuses the growth. */
function placeArgv(memory, argv) {
  const tableBytes = 4 * argv.length;
  const stringBytes = argv.reduce((n, a) => n + a.length + 1, 0);
  const base = memory.grow(Math.max(1, Math.ceil((tableBytes + stringBytes) / PAGE))) * PAGE;
  const view = new DataView(memory.buffer);
  const bytes = new Uint8Array(memory.buffer);
  let cursor = base + tableBytes;
  argv.forEach((arg, i) => {
    view.setUint32(base + 4 * i, cursor, true);
    bytes.set(arg, cursor); // fresh pages are zero: the NUL is already there
    cursor += arg.length + 1;
  });
  return base;
}

/** Whether memory is within 1/16 of its cap (at least 1 MiB) of it: a failure this close to the
 * cap is taken to be for want of memory (memory.grow's -1 leaves no other trace). The cap is
 * memory's share of memoryBytes (whole pages, at least 1/256 left for tables), as the
 * executor's. */
function atMemoryCap(call, limits) {
  const size = call.memory ? call.memory.buffer.byteLength : 0;
  const { memoryBytes } = limits;
  const cap = Math.floor((memoryBytes - Math.floor(memoryBytes / 256)) / PAGE) * PAGE;
  return size + Math.max(MIB, Math.floor(cap / 16)) > cap;
}

// Engine messages (V8, SpiderMonkey, JavaScriptCore) -> wasmtime's trap codes, best effort.
const TRAP_CODES = [
  [/unreachable/i, 'unreachable'],
  [/(divide|division|remainder) by zero/i, 'integer_division_by_zero'],
  [/integer overflow|divide result unrepresentable/i, 'integer_overflow'],
  [/float unrepresentable|conversion to integer|truncat/i, 'bad_conversion_to_integer'],
  [/signature mismatch/i, 'bad_signature'],
  [/null function|indirect call to null/i, 'indirect_call_to_null'],
  [/table index|table.*out of bounds|undefined element/i, 'table_out_of_bounds'],
  [/unaligned/i, 'heap_misaligned'],
  [/out of bounds|memory access/i, 'memory_out_of_bounds'],
];

const isStackOverflow = (err) =>
  (err instanceof RangeError && /call stack/i.test(err.message)) ||
  (err?.name === 'InternalError' && /recursion/i.test(err.message));

/** The error and the innermost wasm frame on one line. */
function describe(err) {
  const frame = String(err?.stack ?? '')
    .split('\n')
    .find((line) => line.includes('wasm-function') || line.includes('wasm://'));
  const where = frame ? ` (at ${frame.trim().replace(/^at\s+/, '')})` : '';
  return `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}${where}`;
}

function failure(kind, message, trapCode = null) {
  return { kind, message: `${kind}: ${message}`, trapCode };
}

function timedOut(limits) {
  return failure(RESULT_KIND.TIMEOUT, `the deadline of ${limits.deadlineMs / 1000} s passed`);
}

/** How a call that threw (or whose host calls were stopped) ended. */
function ended(call, err, limits) {
  if (call.stop?.needs !== undefined) return { needs: call.stop.needs };
  if (call.stop?.timeout) return timedOut(limits);
  if (isStackOverflow(err)) {
    return failure(RESULT_KIND.STACK_OVERFLOW, describe(err), 'stack_overflow'); // wasmtime's code
  }
  if (atMemoryCap(call, limits)) {
    return failure(RESULT_KIND.MEMORY_LIMIT, `${limits.memoryBytes} bytes, then ${describe(err)}`);
  }
  const code = TRAP_CODES.find(([pattern]) => pattern.test(err?.message ?? ''))?.[1] ?? null;
  const trapCode = err instanceof WebAssembly.RuntimeError ? code : null;
  return failure(RESULT_KIND.TRAP, describe(err), trapCode);
}

/** One call: instantiate (fresh memory), place argv, call `entrypoint`, collect outputs.
 * request: {argv: Uint8Array[], inputs: [fid, Uint8Array | null][], outputs: string[], limits,
 * deadlineAt?: performance.now() time after which host calls stop the call (in-thread mode)}.
 * Returns {needs: fid} (a sealed input was opened), or {kind, message, trapCode, returnValue,
 * outputs: Map}, each with `timings` (seconds). */
export async function attempt(module, request) {
  const { argv, outputs, limits, deadlineAt } = request;
  const inputs = new Map(request.inputs);
  const files = new FileContext(inputs, outputs, limits.maxHandles, limits.outputBytes);
  const call = { files, memory: null, stop: null, deadlineAt };
  const timings = {};
  let start = now();
  const lap = (name) => {
    timings[name] = (now() - start) / 1000;
    start = now();
  };
  let instance;
  try {
    instance = await WebAssembly.instantiate(module, { [IMPORT_MODULE]: hostFunctions(call) });
  } catch (err) {
    lap('instantiate');
    if (err instanceof WebAssembly.RuntimeError || isStackOverflow(err) || call.stop) {
      return { ...ended(call, err, limits), timings }; // the start function trapped
    }
    const message = `${limits.memoryBytes} bytes: ${describe(err)}`;
    return { ...failure(RESULT_KIND.MEMORY_LIMIT, message), timings };
  }
  call.memory = instance.exports.memory;
  let argvPtr;
  try {
    argvPtr = placeArgv(call.memory, argv);
  } catch (err) {
    lap('instantiate');
    return { ...failure(RESULT_KIND.MEMORY_LIMIT, `no room for argv: ${describe(err)}`), timings };
  }
  lap('instantiate');
  if (deadlineAt !== undefined && now() > deadlineAt) {
    return { ...timedOut(limits), timings };
  }
  let returnValue;
  try {
    returnValue = instance.exports.entrypoint(argv.length, argvPtr);
  } catch (err) {
    lap('run');
    return { ...ended(call, err, limits), timings };
  }
  lap('run');
  if (call.stop) return { ...ended(call, null, limits), timings }; // the guest caught a Stop
  if (deadlineAt !== undefined && now() > deadlineAt) {
    return { ...timedOut(limits), timings };
  }
  if (files.outputLimitHit) {
    const message = `outputs exceeded ${limits.outputBytes} bytes`;
    return { ...failure(RESULT_KIND.OUTPUT_LIMIT, message), timings };
  }
  if (returnValue < 0 && atMemoryCap(call, limits)) {
    const message = `the function hit ${limits.memoryBytes} bytes and failed`;
    return { ...failure(RESULT_KIND.MEMORY_LIMIT, message), timings };
  }
  const outcome = { kind: RESULT_KIND.OK, message: RESULT_KIND.OK, trapCode: null };
  return { ...outcome, returnValue, outputs: files.written, timings };
}

// ---- the worker entry: active only in a Worker that teaclave-host.js started ----------------

export const WORKER_NAME = 'teaclave-host';
const isNode = typeof process !== 'undefined' && process.versions?.node !== undefined;

async function workerPort() {
  if (isNode) {
    const { isMainThread, parentPort, workerData } = await import('node:worker_threads');
    if (isMainThread || workerData?.[WORKER_NAME] !== true) return null;
    return {
      post: (message, transfer) => parentPort.postMessage(message, transfer),
      listen: (fn) => parentPort.on('message', fn),
    };
  }
  const scope = globalThis;
  if (typeof scope.WorkerGlobalScope === 'undefined' || scope.name !== WORKER_NAME) return null;
  return {
    post: (message, transfer) => scope.postMessage(message, transfer),
    listen: (fn) => (scope.onmessage = (e) => fn(e.data)),
  };
}

const port = await workerPort();
if (port) {
  port.listen(async ({ module, request }) => {
    try {
      const outcome = await attempt(module, request);
      const transfer = outcome.outputs ? [...outcome.outputs.values()].map((b) => b.buffer) : [];
      port.post({ outcome }, transfer);
    } catch (err) {
      port.post({ error: describe(err) });
    }
  });
  port.post({ ready: true });
}
