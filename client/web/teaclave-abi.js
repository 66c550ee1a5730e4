// Teaclave's function ABI as the Python side has it (teaclave_infer/abi.py, executor/_validate.py):
// just enough of the wasm binary format to check a function's imports and exports and to write
// memory and table caps into it, and argv packed as abi.pack_arguments packs it. Used by
// teaclave-host.js.
// Written by hand: no library parses wasm sections in a browser without a build step.

import { ENTRYPOINT, IMPORT_MODULE, TEACLAVE_IMPORTS } from './teaclave-constants.js';
import canonicalize from './vendor/node_modules/canonicalize/lib/canonicalize.js';

export { ENTRYPOINT, IMPORT_MODULE, TEACLAVE_IMPORTS };
export const MAX_PAGES = 65536; // wasm32: 4 GiB
export const MAX_TABLE_ELEMENTS = 0xffff_ffff; // wasm32 tables

export class InvalidModuleError extends Error {
  name = 'InvalidModuleError';
}

/** The module imports something other than Teaclave's five file functions. */
export class ForbiddenImportError extends InvalidModuleError {
  name = 'ForbiddenImportError';
}

// ---- the wasm binary: just enough parsing to check the ABI and to cap memory and tables -----

const malformed = (what) => new InvalidModuleError(`invalid module: ${what}`);

class Reader {
  constructor(bytes, pos, end) {
    Object.assign(this, { bytes, pos, end });
  }

  byte() {
    if (this.pos >= this.end) throw malformed('unexpected end of a section');
    return this.bytes[this.pos++];
  }

  /** Unsigned LEB128: 7 bits a byte, least significant first, the high bit says "more".
   * Multiplies instead of shifting so that a 64-bit limit does not wrap at 32 bits. */
  leb(maxBytes = 5) {
    let value = 0;
    for (let i = 0, scale = 1; i < maxBytes; i++, scale *= 128) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (!(b & 0x80)) return value;
    }
    throw malformed('a LEB128 number is too long');
  }

  name() {
    const length = this.leb();
    if (this.pos + length > this.end) throw malformed('a name runs past its section');
    const text = new TextDecoder().decode(this.bytes.subarray(this.pos, this.pos + length));
    this.pos += length;
    return text;
  }

  vec(item) {
    const out = [];
    for (let n = this.leb(); n > 0; n--) out.push(item());
    return out;
  }
}

const VALUE_TYPES = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128' };
Object.assign(VALUE_TYPES, { 0x70: 'funcref', 0x6f: 'externref' });
const EXTERNAL_KINDS = ['func', 'table', 'memory', 'global', 'tag'];

function valueType(r) {
  const code = r.byte();
  if (code === 0x63 || code === 0x64) {
    r.leb(); // a typed reference's heap type (s33): only its length matters here
    return 'ref';
  }
  if (VALUE_TYPES[code] === undefined) throw malformed(`value type 0x${code.toString(16)}`);
  return VALUE_TYPES[code];
}

function funcType(r) {
  if (r.byte() !== 0x60) throw malformed('a type that is not a function type (GC is off)');
  return { params: r.vec(() => valueType(r)), results: r.vec(() => valueType(r)) };
}

/** Limits: a flags byte (1: has a maximum, 2: shared, 4: 64-bit), the minimum, the maximum. */
function limits(r) {
  const flags = r.byte();
  const min = r.leb(10);
  return { flags, min, max: flags & 1 ? r.leb(10) : null };
}

/** A table type: its element type (one byte: funcref or externref, typed references are off)
 * and its limits. */
function table(r) {
  const element = r.byte();
  if (element !== 0x70 && element !== 0x6f) throw malformed(`table of 0x${element.toString(16)}`);
  const tableLimits = limits(r);
  if (tableLimits.flags & ~1) throw malformed('a shared or 64-bit table');
  return { element, limits: tableLimits };
}

function importEntry(r) {
  const entry = { module: r.name(), name: r.name(), kind: EXTERNAL_KINDS[r.byte()] };
  if (entry.kind === 'func') entry.type = r.leb();
  else if (entry.kind === 'table') [entry.element, entry.limits] = [valueType(r), limits(r)];
  else if (entry.kind === 'memory') entry.limits = limits(r);
  else if (entry.kind === 'global') [entry.valueType, entry.mutable] = [valueType(r), r.byte()];
  else if (entry.kind === 'tag') [entry.attribute, entry.type] = [r.byte(), r.leb()];
  else throw malformed(`import ${entry.module}.${entry.name} of an unknown kind`);
  return entry;
}

function exportEntry(r) {
  return { name: r.name(), kind: EXTERNAL_KINDS[r.byte()], index: r.leb() };
}

/** The sections the ABI check and the caps need: types, imports, functions, tables and memory
 * (with their byte ranges, to rewrite them), exports. */
export function parseModule(bytes) {
  const magic = [0x00, 0x61, 0x73, 0x6d];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) {
    throw new InvalidModuleError('not a WebAssembly module (no \\0asm magic)');
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw malformed('not a core module of binary version 1');
  }
  const layout = { types: [], imports: [], functions: [], exports: [], memory: null, table: null };
  const r = new Reader(bytes, 8, bytes.length);
  while (r.pos < r.end) {
    const sectionStart = r.pos;
    const id = r.byte();
    const size = r.leb();
    const end = r.pos + size;
    if (end > bytes.length) throw malformed(`section ${id} runs past the end`);
    const s = new Reader(bytes, r.pos, end);
    if (id === 1) layout.types = s.vec(() => funcType(s));
    else if (id === 2) layout.imports = s.vec(() => importEntry(s));
    else if (id === 3) layout.functions = s.vec(() => s.leb());
    else if (id === 4) layout.table = { sectionStart, end, tables: s.vec(() => table(s)) };
    else if (id === 5) layout.memory = { sectionStart, end, memories: s.vec(() => limits(s)) };
    else if (id === 7) layout.exports = s.vec(() => exportEntry(s));
    r.pos = end;
  }
  return layout;
}

function encodeLeb(value) {
  const out = [];
  do {
    const low = value % 128;
    value = Math.floor(value / 128);
    out.push(value > 0 ? low | 0x80 : low);
  } while (value > 0);
  return out;
}

/** The module's own memory, checked: one, not shared, 32-bit. */
export function ownMemory(layout) {
  const memories = layout.memory?.memories ?? [];
  if (memories.length > 1) throw malformed('more than one memory (multi-memory is off)');
  const memory = memories[0];
  if (memory && memory.flags & ~1) {
    throw malformed(memory.flags & 2 ? 'shared memory (threads are off)' : 'memory64 is off');
  }
  return memory ?? null;
}

/** The bytes with section [start, end) replaced by `id` with `content`. */
function replaceSection(bytes, { sectionStart, end }, id, content) {
  const section = [id, ...encodeLeb(content.length), ...content];
  const out = new Uint8Array(bytes.length - (end - sectionStart) + section.length);
  out.set(bytes.subarray(0, sectionStart));
  out.set(section, sectionStart);
  out.set(bytes.subarray(end), sectionStart + section.length);
  return out;
}

/** The bytes with the memory's maximum lowered to `capPages` and every table's to
 * `tableElements`, or a string saying what is over its cap before anything runs: the initial
 * memory, a table's initial size, more than `maxTables` tables. A module without its own memory
 * keeps none (the ABI check refuses it). Sections are rewritten back to front: the table section
 * comes before the memory section, whose range must not move first. */
export function withCaps(bytes, layout, { capPages, tableElements, maxTables }) {
  const memory = ownMemory(layout);
  const tables = layout.table?.tables ?? [];
  if (memory !== null && memory.min > capPages) {
    return `the module's initial memory is ${memory.min * 65536} bytes`;
  }
  if (tables.length > maxTables) {
    return `the module has ${tables.length} tables (${maxTables} allowed)`;
  }
  const over = tables.find((t) => t.limits.min > tableElements);
  if (over) {
    return `a table's initial size is ${over.limits.min} elements (${tableElements} allowed)`;
  }
  let out = bytes;
  if (memory !== null) {
    const max = Math.min(memory.max ?? MAX_PAGES, capPages);
    const content = [1, 0x01, ...encodeLeb(memory.min), ...encodeLeb(max)]; // one, has a max
    out = replaceSection(out, layout.memory, 5, content);
  }
  if (tables.length) {
    const content = [...encodeLeb(tables.length)];
    for (const { element, limits: { min, max } } of tables) {
      const capped = Math.min(max ?? MAX_TABLE_ELEMENTS, tableElements);
      content.push(element, 0x01, ...encodeLeb(min), ...encodeLeb(capped));
    }
    out = replaceSection(out, layout.table, 4, content);
  }
  return out;
}

const signature = (type) => `(${type.params.join(', ')}) -> (${type.results.join(', ')})`;

function functionType(layout, index) {
  const imported = layout.imports.filter((i) => i.kind === 'func');
  if (index < imported.length) return layout.types[imported[index].type];
  return layout.types[layout.functions[index - imported.length]];
}

/** The executor's validation (_validate.py), with its messages. */
export function checkAbi(layout) {
  for (const imp of layout.imports) {
    const name = `${imp.module}.${imp.name}`;
    const known = imp.module === IMPORT_MODULE && Object.hasOwn(TEACLAVE_IMPORTS, imp.name);
    if (!known) throw new ForbiddenImportError(`forbidden import ${name} (${imp.kind})`);
    const want = `(${Array(TEACLAVE_IMPORTS[imp.name]).fill('i32').join(', ')}) -> (i32)`;
    const got = imp.kind === 'func' ? signature(layout.types[imp.type]) : imp.kind;
    if (got !== want) {
      throw new ForbiddenImportError(`import ${name} must be a function ${want}, not ${got}`);
    }
  }
  const exports = new Map(layout.exports.map((e) => [e.name, e]));
  const entry = exports.get(ENTRYPOINT);
  if (entry?.kind !== 'func') {
    throw new InvalidModuleError(`missing export: function ${ENTRYPOINT}`);
  }
  const entryType = signature(functionType(layout, entry.index));
  if (entryType !== '(i32, i32) -> (i32)') {
    const want = '(i32, i32) -> (i32)';
    throw new InvalidModuleError(`export ${ENTRYPOINT} must be ${want}, not ${entryType}`);
  }
  if (exports.get('memory')?.kind !== 'memory') {
    throw new InvalidModuleError('missing export: memory `memory`');
  }
}

// ---- arguments, as abi.pack_arguments --------------------------------------------------------

/** An argument's argv text, as abi.argument_text: a string as it is, any other value its RFC 8785
 * canonical JSON; TypeError naming the argument for a value that has none. */
function argumentText(key, value) {
  if (typeof value === 'string') return value;
  let text;
  try {
    text = ArrayBuffer.isView(value) ? undefined : canonicalize(value);
  } catch (err) {
    throw new TypeError(`argument ${key}: ${err.message}`, { cause: err });
  }
  if (typeof text !== 'string') {
    throw new TypeError(`argument ${key}: a ${typeof value} is not JSON`);
  }
  return text;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** argv for `entrypoint`: key then value for each argument, pairs sorted by key (UTF-8 byte
 * order); non-string values as their canonical JSON (argumentText). */
export function packArguments(args = {}) {
  const encoder = new TextEncoder();
  return Object.entries(args)
    .map(([k, v]) => [k, argumentText(k, v)])
    .map((pair) => pair.map((text) => encoder.encode(text)))
    .sort(([a], [b]) => compareBytes(a, b))
    .flat();
}
