/**
 * Poly1305 one-time authenticator (RFC 8439, section 2.5).
 *
 * Two implementations, one answer. Messages of NATIVE_MIN bytes and more go to libsodium's
 * `crypto_onetimeauth` (sodium-native, which ships libsodium built for each platform): its SIMD
 * code ran ~4.3 GiB/s here against ~2.4 GiB/s for the module below, where the MAC was ~8% of a
 * worker's time in check --read-data. Shorter ones, and every message where sodium-native cannot
 * load, go to the poly1305-donna-32 block function (five 26-bit limbs, 64-bit products) compiled
 * to a tiny WebAssembly module that is assembled below at load time: a native call costs ~180 ns
 * whatever the length, the module's setup ~90 ns. Plain JavaScript has no exact 64-bit multiply,
 * so a JS version must fall back to 13-bit limbs and four times as many multiplications (about
 * 120 MiB/s). Key setup and the final reduction of the module's path stay in JavaScript.
 */

import { createRequire } from 'node:module';
import path from 'node:path';
import { OP, instantiateWasm, sleb, uleb, type WasmFunction } from '../util/wasm.js';

/** Size of a Poly1305 tag in bytes. */
export const TAG_SIZE = 16;

/** Size of a Poly1305 key (r || s) in bytes. */
export const KEY_SIZE = 32;

const MASK26 = 0x3ffffff;

/*
 * Linear memory layout (one 64 KiB page plus a second one for the buffer):
 *   [0, 20)   h0..h4, the accumulator, as u32 limbs
 *   [20, 40)  r0..r4, the clamped key, as u32 limbs
 *   [40, 56)  5*r1..5*r4, precomputed for the modular reduction
 *   [64, 64 + CHUNK + 16)  message bytes; the extra block holds the padded tail
 */
const STATE_WORDS = 14;
const BUF = 64;
const CHUNK = 65536;
const PAGES = 2;

const { blocks, mem, state } = instantiate();

/** The part of sodium-native used here. */
export interface Sodium {
  /** Writes the tag of `msg` under `key` (r || s, r clamped inside) into `out`, 16 bytes exactly. */
  crypto_onetimeauth(out: Uint8Array, msg: Uint8Array, key: Uint8Array): void;
}

/**
 * sodium-native, or null where it does not load (a platform it ships no build for). The addon it
 * ships for this platform is loaded straight from its `prebuilds` folder: the package's own entry
 * finds it through require-addon, whose resolver took 7-10 ms and ~1 MiB in every thread that
 * loads this module (the main thread and each worker), against ~2 ms and ~0.2 MiB for the file
 * itself. Where that file is not there or does not load (a musl system, a build from source), the
 * package's entry decides.
 */
export function loadSodium(req: AddonRequire = createRequire(import.meta.url)): Sodium | null {
  try {
    return usable(req(path.join(path.dirname(req.resolve('sodium-native')), 'prebuilds', `${process.platform}-${process.arch}`, 'sodium-native.node')));
  } catch {
    // No such file, or one this system cannot load: the package's entry decides.
  }
  try {
    return usable(req('sodium-native'));
  } catch {
    return null;
  }
}

/** What loadSodium needs of `require`. */
export interface AddonRequire {
  (id: string): unknown;
  resolve(id: string): string;
}

/** `m`, when it has what this module calls. */
function usable(m: unknown): Sodium {
  if (typeof (m as Partial<Sodium> | null)?.crypto_onetimeauth !== 'function') throw new TypeError('not sodium-native');
  return m as Sodium;
}

const sodium = loadSodium();

/** Messages from this length on go to libsodium; below it the WebAssembly module is faster (measured at 16 B to 4 KiB, even at ~1 KiB). */
const NATIVE_MIN = 1024;

/** Which implementation tags messages of NATIVE_MIN bytes and more. */
export const poly1305Native: 'libsodium' | 'webassembly' = sodium ? 'libsodium' : 'webassembly';

/**
 * Computes the Poly1305 tag of `msg` under the one-time `key` (r || s, 32 bytes).
 * r is clamped here, as the RFC requires, so callers may pass it unclamped.
 */
export function poly1305(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(TAG_SIZE);
  poly1305Into(key, msg, out, 0);
  return out;
}

/** Like {@link poly1305} but writes the tag into `out` at `outOffset`, so sealing needs no extra copy. */
export function poly1305Into(key: Uint8Array, msg: Uint8Array, out: Uint8Array, outOffset: number): void {
  checkArgs(key, out, outOffset);
  if (sodium && msg.length >= NATIVE_MIN) sodium.crypto_onetimeauth(tagView(out, outOffset), msg, key);
  else blocksInto(key, msg, out, outOffset);
}

/**
 * The two implementations, each for any length, for tests that hold them to the same answers;
 * libsodium's only where it loads.
 */
export const poly1305Implementations: Record<string, (key: Uint8Array, msg: Uint8Array, out: Uint8Array, outOffset: number) => void> = {
  webassembly: (key, msg, out, outOffset) => {
    checkArgs(key, out, outOffset);
    blocksInto(key, msg, out, outOffset);
  },
  ...(sodium
    ? {
        libsodium: (key: Uint8Array, msg: Uint8Array, out: Uint8Array, outOffset: number): void => {
          checkArgs(key, out, outOffset);
          sodium.crypto_onetimeauth(tagView(out, outOffset), msg, key);
        },
      }
    : {}),
};

function checkArgs(key: Uint8Array, out: Uint8Array, outOffset: number): void {
  if (key.length !== KEY_SIZE) throw new RangeError(`poly1305 key must be ${KEY_SIZE} bytes, got ${key.length}`);
  if (outOffset < 0 || outOffset + TAG_SIZE > out.length) throw new RangeError('poly1305 output does not fit');
}

/** The 16 bytes at `outOffset`: libsodium takes an output of exactly the tag's size. */
function tagView(out: Uint8Array, outOffset: number): Uint8Array {
  return outOffset === 0 && out.length === TAG_SIZE ? out : out.subarray(outOffset, outOffset + TAG_SIZE);
}

/** The WebAssembly module's path: key split and clamped here, blocks there, the final reduction here. */
function blocksInto(key: Uint8Array, msg: Uint8Array, out: Uint8Array, outOffset: number): void {
  const t0 = u32le(key, 0);
  const t1 = u32le(key, 4);
  const t2 = u32le(key, 8);
  const t3 = u32le(key, 12);
  // Clamping as in RFC 8439 2.5.1, folded into the split into 26-bit limbs.
  const r0 = t0 & 0x3ffffff;
  const r1 = ((t0 >>> 26) | (t1 << 6)) & 0x3ffff03;
  const r2 = ((t1 >>> 20) | (t2 << 12)) & 0x3ffc0ff;
  const r3 = ((t2 >>> 14) | (t3 << 18)) & 0x3f03fff;
  const r4 = (t3 >>> 8) & 0x00fffff;
  state[0] = 0;
  state[1] = 0;
  state[2] = 0;
  state[3] = 0;
  state[4] = 0;
  state[5] = r0;
  state[6] = r1;
  state[7] = r2;
  state[8] = r3;
  state[9] = r4;
  state[10] = r1 * 5;
  state[11] = r2 * 5;
  state[12] = r3 * 5;
  state[13] = r4 * 5;

  const len = msg.length;
  let off = 0;
  while (len - off > CHUNK) {
    mem.set(msg.subarray(off, off + CHUNK), BUF);
    blocks(BUF, BUF + CHUNK, 1);
    off += CHUNK;
  }
  const rest = len - off;
  mem.set(msg.subarray(off), BUF);
  const full = rest & ~15;
  if (full > 0) blocks(BUF, BUF + full, 1);
  const tail = rest - full;
  if (tail > 0) {
    // A short final block gets a 0x01 byte after it and no 2^128 bit (RFC 8439 2.5.1).
    const p = BUF + full;
    mem[p + tail] = 1;
    mem.fill(0, p + tail + 1, p + 16);
    blocks(p, p + 16, 0);
  }

  finish(key, out, outOffset);
}

/** Reduces h fully mod 2^130 - 5, adds s and writes the low 128 bits little-endian. */
function finish(key: Uint8Array, out: Uint8Array, o: number): void {
  let h0 = state[0];
  let h1 = state[1];
  let h2 = state[2];
  let h3 = state[3];
  let h4 = state[4];

  // After the block function only h1 may exceed 26 bits. The second pass from h1 to h4 leaves
  // every limb of a value below p within 26 bits, so the packing below can use plain ORs.
  let c = h1 >>> 26;
  h1 &= MASK26;
  h2 += c; c = h2 >>> 26; h2 &= MASK26;
  h3 += c; c = h3 >>> 26; h3 &= MASK26;
  h4 += c; c = h4 >>> 26; h4 &= MASK26;
  h0 += c * 5; c = h0 >>> 26; h0 &= MASK26;
  h1 += c; c = h1 >>> 26; h1 &= MASK26;
  h2 += c; c = h2 >>> 26; h2 &= MASK26;
  h3 += c; c = h3 >>> 26; h3 &= MASK26;
  h4 += c;

  // g = h - p; select g when it did not borrow, without branching on secret data.
  let g0 = h0 + 5; c = g0 >>> 26; g0 &= MASK26;
  let g1 = h1 + c; c = g1 >>> 26; g1 &= MASK26;
  let g2 = h2 + c; c = g2 >>> 26; g2 &= MASK26;
  let g3 = h3 + c; c = g3 >>> 26; g3 &= MASK26;
  let g4 = (h4 + c - (1 << 26)) | 0;
  const useG = (g4 >>> 31) - 1;
  const useH = ~useG;
  h0 = (h0 & useH) | (g0 & useG);
  h1 = (h1 & useH) | (g1 & useG);
  h2 = (h2 & useH) | (g2 & useG);
  h3 = (h3 & useH) | (g3 & useG);
  g4 &= useG;
  h4 = (h4 & useH) | g4;

  const w0 = (h0 | (h1 << 26)) >>> 0;
  const w1 = ((h1 >>> 6) | (h2 << 20)) >>> 0;
  const w2 = ((h2 >>> 12) | (h3 << 14)) >>> 0;
  const w3 = ((h3 >>> 18) | (h4 << 8)) >>> 0;

  // Sums stay below 2^33, exact in doubles.
  let f = w0 + u32le(key, 16);
  putU32le(out, o, f);
  f = w1 + u32le(key, 20) + (f > 0xffffffff ? 1 : 0);
  putU32le(out, o + 4, f);
  f = w2 + u32le(key, 24) + (f > 0xffffffff ? 1 : 0);
  putU32le(out, o + 8, f);
  f = w3 + u32le(key, 28) + (f > 0xffffffff ? 1 : 0);
  putU32le(out, o + 12, f);
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

function putU32le(b: Uint8Array, i: number, v: number): void {
  b[i] = v;
  b[i + 1] = v >>> 8;
  b[i + 2] = v >>> 16;
  b[i + 3] = v >>> 24;
}

interface Poly1305Wasm {
  /** Processes the 16-byte blocks in [ptr, end); `hibit` is 1 for full blocks, 0 for the padded tail. */
  blocks: (ptr: number, end: number, hibit: number) => void;
  mem: Uint8Array;
  state: Uint32Array;
}

function instantiate(): Poly1305Wasm {
  const { call, buffer } = instantiateWasm<Poly1305Wasm['blocks']>(blockFunction());
  return { blocks: call, mem: new Uint8Array(buffer), state: new Uint32Array(buffer, 0, STATE_WORDS) };
}

/** The block function `blocks(ptr: i32, end: i32, hibit: i32)` over a memory laid out as above. */
function blockFunction(): WasmFunction {
  // Locals: params 0..2, then i64 h0..h4, r0..r4, s1..s4, d0..d4, carry, hibit << 24.
  const PTR = 0, END = 1, HIBIT = 2;
  const H = 3, R = 8, S = 13, D = 17, C = 22, HI = 23;
  const I64_LOCALS = 21;
  const rCoef = (i: number, k: number): number => (i <= k ? R + k - i : S + k - i + 4);

  const code: number[] = [];
  const emit = (...bytes: number[]): void => {
    code.push(...bytes);
  };
  const get = (i: number): void => emit(OP.localGet, i);
  const set = (i: number): void => emit(OP.localSet, i);
  const i64c = (v: number): void => emit(OP.i64Const, ...sleb(v));
  const loadState = (word: number): void => emit(OP.i32Const, 0, OP.i64Load32U, 2, ...uleb(word * 4));
  const loadMsg = (offset: number): void => {
    get(PTR);
    emit(OP.i64Load32U, 0, offset);
  };

  for (let i = 0; i < 5; i++) {
    loadState(i);
    set(H + i);
    loadState(5 + i);
    set(R + i);
  }
  for (let i = 0; i < 4; i++) {
    loadState(10 + i);
    set(S + i);
  }
  get(HIBIT);
  emit(OP.i64ExtendI32U);
  i64c(24);
  emit(OP.i64Shl);
  set(HI);

  emit(OP.block, OP.void);
  get(PTR);
  get(END);
  emit(OP.i32GeU, OP.brIf, 0);
  emit(OP.loop, OP.void);

  // h += m, split into 26-bit limbs with unaligned 32-bit loads.
  const shifts = [0, 2, 4, 6, 8];
  for (let i = 0; i < 5; i++) {
    get(H + i);
    loadMsg(i * 3);
    if (shifts[i] > 0) {
      i64c(shifts[i]);
      emit(OP.i64ShrU);
    }
    if (i < 4) {
      i64c(MASK26);
      emit(OP.i64And);
    } else {
      get(HI);
      emit(OP.i64Or);
    }
    emit(OP.i64Add);
    set(H + i);
  }

  // d = h * r mod 2^130 - 5, using 2^130 = 5 (mod p) via the precomputed 5*r limbs.
  for (let k = 0; k < 5; k++) {
    for (let i = 0; i < 5; i++) {
      get(H + i);
      get(rCoef(i, k));
      emit(OP.i64Mul);
      if (i > 0) emit(OP.i64Add);
    }
    set(D + k);
  }

  // Carry chain d0 -> d4, folding the top carry back into h0 times 5.
  for (let k = 0; k < 5; k++) {
    get(D + k);
    if (k > 0) {
      get(C);
      emit(OP.i64Add);
      set(D + k);
      get(D + k);
    }
    i64c(26);
    emit(OP.i64ShrU);
    set(C);
    get(D + k);
    i64c(MASK26);
    emit(OP.i64And);
    set(H + k);
  }
  get(H);
  get(C);
  i64c(5);
  emit(OP.i64Mul, OP.i64Add);
  set(H);
  get(H + 1);
  get(H);
  i64c(26);
  emit(OP.i64ShrU, OP.i64Add);
  set(H + 1);
  get(H);
  i64c(MASK26);
  emit(OP.i64And);
  set(H);

  get(PTR);
  emit(OP.i32Const, 16, OP.i32Add);
  set(PTR);
  get(PTR);
  get(END);
  emit(OP.i32LtU, OP.brIf, 0);
  emit(OP.end, OP.end);

  for (let i = 0; i < 5; i++) {
    emit(OP.i32Const, 0);
    get(H + i);
    emit(OP.i64Store32, 2, ...uleb(i * 4));
  }
  emit(OP.end);

  return {
    params: [OP.i32, OP.i32, OP.i32],
    results: [],
    locals: [[I64_LOCALS, OP.i64]],
    code,
    pages: PAGES,
  };
}
