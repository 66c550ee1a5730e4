// teaclave-host.js against the Python executor (run: pytest tests/web/test_web_host.py, which writes
// the fixtures and runs `node --test client/web/test/host.test.mjs` with TEACLAVE_WEB_FIXTURES).
// Fixture groups, each present or not: guests/cases.json (hand-written guests, the executor's
// results, argv packed by abi.pack_arguments) and mnist/cases.json (the MNIST function in both
// weight modes, 20 samples). Without fixtures only the self-contained checks below run.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  DEFAULT_LIMITS,
  ForbiddenImportError,
  FunctionModule,
  InvalidModuleError,
  LimitError,
  loadFunction,
  packArguments,
  runFunction,
} from '../teaclave-host.js';

const FIXTURES = process.env.TEACLAVE_WEB_FIXTURES;
const fromB64 = (text) => new Uint8Array(Buffer.from(text, 'base64'));
const toB64 = (bytes) => Buffer.from(bytes).toString('base64');
const mapValues = (object, fn) =>
  Object.fromEntries(Object.entries(object).map(([k, v]) => [k, fn(v)]));

/** A fixture group's cases.json and its directory, or null when the group was not written. */
function group(name) {
  const dir = FIXTURES && join(FIXTURES, name);
  if (!dir || !existsSync(join(dir, 'cases.json'))) return null;
  return { dir, ...JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) };
}

// ---- self-contained: a hand-assembled module (LEB128 by hand, as the host parses it) --------

const leb = (n) => (n < 128 ? [n] : [(n % 128) | 0x80, ...leb(Math.floor(n / 128))]);
const section = (id, content) => [id, ...leb(content.length), ...content];
const name = (text) => [text.length, ...Buffer.from(text)];

/** (module (memory (export "memory") min max?) (func (export "entrypoint") (param i32 i32)
 * (result i32) (memory.grow (i32.const grow)))) */
function growModule({ min, max = null, grow }) {
  const body = [0x00, 0x41, ...signedLeb(grow), 0x40, 0x00, 0x0b];
  const limits = max === null ? [0x00, ...leb(min)] : [0x01, ...leb(min), ...leb(max)];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 1, 0x7f]),
    ...section(3, [1, 0]),
    ...section(5, [1, ...limits]),
    ...section(7, [2, ...name('entrypoint'), 0, 0, ...name('memory'), 2, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}

function signedLeb(n) {
  const out = [];
  for (;;) {
    const low = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && !(low & 0x40)) || (n === -1 && low & 0x40);
    out.push(done ? low : low | 0x80);
    if (done) return out;
  }
}

for (const worker of [true, false]) {
  const mode = worker ? 'worker' : 'thread';

  test(`memory.grow past the cap is -1 in the guest (${mode})`, async () => {
    const fn = await loadFunction(growModule({ min: 1, grow: 200 }));
    const free = await runFunction(fn, { worker });
    assert.equal(free.kind, 'ok', free.message);
    assert.equal(free.returnValue, 2); // one page of its own, one for argv
    const capped = await runFunction(fn, { worker, limits: { memoryBytes: 8 << 20 } });
    assert.equal(capped.kind, 'ok', capped.message);
    assert.equal(capped.returnValue, -1);
  });
}

test('a declared maximum below the cap stays; a minimum over the cap is memory_limit', async () => {
  const small = await runFunction(growModule({ min: 1, max: 3, grow: 2 }), { worker: false });
  assert.equal(small.returnValue, -1); // 1 + 1 (argv) + 2 > 3
  const big = await runFunction(growModule({ min: 200, grow: 0 }), {
    worker: false,
    limits: { memoryBytes: 8 << 20 },
  });
  assert.equal(big.kind, 'memory_limit');
  assert.match(big.message, /^memory_limit: 8388608 bytes/);
  const fits = await runFunction(growModule({ min: 200, grow: 0 }), { worker: false });
  assert.equal(fits.returnValue, 201);
});

test('loadFunction refuses what is not a function, with the error classes', async () => {
  await assert.rejects(loadFunction(new Uint8Array([1, 2, 3])), InvalidModuleError);
  await assert.rejects(loadFunction('not bytes'), TypeError);
  const fn = await loadFunction(growModule({ min: 1, grow: 0 }).buffer);
  assert.ok(fn instanceof FunctionModule);
  assert.deepEqual(fn.imports, []);
  assert.ok(new ForbiddenImportError('x') instanceof InvalidModuleError);
});

test('a request that breaks a limit is refused before anything runs', async () => {
  const wasm = growModule({ min: 1, grow: 0 });
  const inputs = { in: new Uint8Array(11) };
  await assert.rejects(
    runFunction(wasm, { inputs, limits: { maxInputBytes: 10 } }),
    (err) => err instanceof LimitError && /input 'in' is 11 bytes/.test(err.message),
  );
  const bad = { deadlineMs: 0, maxHandles: 2000 };
  await assert.rejects(runFunction(wasm, { limits: bad }), /limits: deadlineMs, maxHandles/);
  await assert.rejects(runFunction(wasm, { limits: { deadline_s: 1 } }), /unknown limits/);
  assert.equal(DEFAULT_LIMITS.maxHandles, 1023);
});

// ---- the hand-written guests, against the executor's results ----------------------------------

const guests = group('guests');

function sealedInput(spec) {
  const { data, schema, key, iv, cmac } = spec;
  return { data: fromB64(data), schema, key: fromB64(key), iv: fromB64(iv), cmac: fromB64(cmac) };
}

function callOf(c) {
  const inputs = { ...mapValues(c.inputs, fromB64), ...mapValues(c.sealed, sealedInput) };
  return { arguments: c.arguments, inputs, outputs: c.outputs, limits: c.limits };
}

// Messages that are the host's own text, not an engine's: they must match the executor's exactly.
const EXACT_MESSAGES = new Set(['invalid_module', 'forbidden_import', 'timeout', 'output_limit']);

function assertSameResult(got, want, what) {
  assert.equal(got.kind, want.kind, `${what}: ${got.message}`);
  assert.equal(got.ok, want.kind === 'ok');
  assert.equal(got.returnValue, want.returnValue, what);
  assert.deepEqual(mapValues(got.outputs, toB64), want.outputs, what);
  assert.equal(got.trapCode, want.trapCode, what);
  if (want.kind === 'integrity') assert.ok(got.message.includes(want.message), got.message);
  else if (EXACT_MESSAGES.has(want.kind)) assert.equal(got.message, want.message, what);
  else assert.ok(got.message.startsWith(`${want.kind}`), got.message);
}

/** `call()`'s value, and the delays of the timers armed while it ran. */
async function withTimersSeen(call) {
  const armed = [];
  const setTimeoutBefore = globalThis.setTimeout;
  globalThis.setTimeout = (callback, ms, ...rest) => {
    armed.push(ms);
    return setTimeoutBefore(callback, ms, ...rest);
  };
  try {
    return { value: await call(), armed };
  } finally {
    globalThis.setTimeout = setTimeoutBefore;
  }
}

for (const c of guests?.cases ?? []) {
  for (const mode of c.modes) {
    test(`guests: ${c.name} (${mode})`, async () => {
      const wasm = readFileSync(join(guests.dir, c.wasm));
      const worker = mode === 'worker';
      // The worker runs get a FunctionModule when the bytes load, the others the bytes.
      let fn = wasm;
      if (worker) fn = await loadFunction(wasm).catch(() => wasm);
      const got = await withTimersSeen(() => runFunction(fn, { ...callOf(c), worker }));
      assertSameResult(got.value, c.expect, c.name);
      if (c.expect.kind === 'timeout') {
        // The guests that time out never end on their own: their end is the deadline's, whose
        // timer is armed for the limit. (No wall-clock bound: a loaded machine may start a
        // Worker or fire a timer late, which is no fault of the host.)
        assert.ok(got.armed.includes(c.limits.deadlineMs), `timers armed: ${got.armed}`);
      }
    });
  }
}

test('an argument with no canonical JSON is a TypeError naming it', () => {
  for (const value of [NaN, -Infinity, undefined, () => 0, new Uint8Array(2), { s: '\ud800' }]) {
    const refused = { name: 'TypeError', message: /^argument x: / };
    assert.throws(() => packArguments({ a: 'fine', x: value }), refused, String(value));
  }
});

if (guests) {
  test('guests: argv packed byte for byte as abi.pack_arguments', () => {
    for (const { arguments: args, argv } of guests.argv) {
      assert.deepEqual(packArguments(args).map(toB64), argv, JSON.stringify(args));
    }
  });
}

// ---- the MNIST function, against the executor ----------------------------------------------

const mnist = group('mnist');

/** The float32 data of an .npy file. */
function npyFloats(bytes) {
  assert.deepEqual([...bytes.subarray(0, 6)], [0x93, ...Buffer.from('NUMPY')]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version1 = bytes[6] === 1; // a 2-byte header length, else (versions 2, 3) 4 bytes
  const headerLength = version1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = version1 ? 10 : 12;
  const header = Buffer.from(bytes.subarray(start, start + headerLength)).toString('latin1');
  assert.match(header, /'descr': '<f4'/);
  return new Float32Array(bytes.slice(start + headerLength).buffer);
}

const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

function assertSameScores(got, want, what) {
  assert.equal(got.kind, 'ok', `${what}: ${got.message}`);
  assert.equal(got.returnValue, want.returnValue, what);
  const scores = npyFloats(got.outputs.out_scores);
  const expected = npyFloats(fromB64(want.outputs.out_scores));
  assert.equal(scores.length, expected.length);
  scores.forEach((v, i) => {
    const close = Math.abs(v - expected[i]) <= 1e-5 + 1e-5 * Math.abs(expected[i]); // allclose
    assert.ok(close, `${what}: score ${i} is ${v}, not ${expected[i]}`);
  });
  assert.equal(argmax(scores), got.returnValue, what);
  return toB64(got.outputs.out_scores) === want.outputs.out_scores;
}

// As the service passes them: each input id names its file, the output id the file to write.
const mnistCall = (inputs) => ({
  arguments: { input_img: 'img', scores: 'out_scores' },
  inputs,
  outputs: ['out_scores'],
});
const readBytes = (name) => new Uint8Array(readFileSync(join(mnist.dir, name)));

for (const mode of mnist?.modes ?? []) {
  test(`mnist: ${mode.name} weights, the samples as in the executor`, async (t) => {
    const fn = await loadFunction(readBytes(mode.wasm));
    const weights = mode.weights ? { weights: readBytes(mode.weights) } : {};
    let identical = 0;
    for (const sample of mode.samples) {
      const inputs = { img: fromB64(sample.image), ...weights };
      const got = await runFunction(fn, mnistCall(inputs));
      if (assertSameScores(got, sample.expect, sample.name)) identical += 1;
      assert.equal(got.returnValue, sample.label, sample.name);
    }
    t.diagnostic(`bit-identical scores: ${identical}/${mode.samples.length}`);
  });

  if (mode.sealed) {
    test(`mnist: ${mode.name} weights, the image and the weights encrypted`, async () => {
      const inputs = mapValues(mode.sealed.inputs, sealedInput);
      const got = await runFunction(readBytes(mode.wasm), mnistCall(inputs));
      assertSameScores(got, mode.sealed.expect, 'sealed');
      assert.ok(got.timings.decrypt > 0);
    });
  }
}
