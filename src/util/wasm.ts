/**
 * Tiny WebAssembly modules assembled at load time: one function and one fixed-size memory, both
 * exported. Hot loops that JavaScript cannot run well (64-bit multiplies, byte loops with table
 * lookups) are written as opcode lists next to their callers; this file turns such a list into a
 * running instance, so no build step or binary file is involved.
 */

/** The opcodes the project's modules use. */
export const OP = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  ret: 0x0f,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i32Load8U: 0x2d,
  i64Load32U: 0x35,
  i32Store: 0x36,
  i64Store32: 0x3e,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32LtU: 0x49,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32And: 0x71,
  i32Shl: 0x74,
  i64Add: 0x7c,
  i64Mul: 0x7e,
  i64And: 0x83,
  i64Or: 0x84,
  i64Shl: 0x86,
  i64ShrU: 0x88,
  i64ExtendI32U: 0xad,
  void: 0x40,
  i32: 0x7f,
  i64: 0x7e,
} as const;

// The project's lib settings carry no WebAssembly typings; this is the part used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};

/** What a module is made of. */
export interface WasmFunction {
  /** Value types of the parameters (`OP.i32`, `OP.i64`). */
  params: number[];
  /** Value types of the results; empty for none. */
  results: number[];
  /** Extra locals after the parameters, as [count, value type] runs. */
  locals: Array<[number, number]>;
  /** The body's instructions, ending with `OP.end`. */
  code: number[];
  /** Memory size in 64 KiB pages; the memory never grows, so views of it stay valid. */
  pages: number;
}

/** Assembles and instantiates `fn`; returns the function and the memory's buffer. */
export function instantiateWasm<F>(fn: WasmFunction): { call: F; buffer: ArrayBuffer } {
  const body = [...uleb(fn.locals.length), ...fn.locals.flatMap(([count, type]) => [...uleb(count), type]), ...fn.code];
  const section = (id: number, payload: number[]): number[] => [id, ...uleb(payload.length), ...payload];
  const name = (s: string): number[] => [s.length, ...Array.from(s, (ch) => ch.charCodeAt(0))];
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, fn.params.length, ...fn.params, fn.results.length, ...fn.results]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x01, ...uleb(fn.pages), ...uleb(fn.pages)]),
    ...section(7, [2, ...name('memory'), 0x02, 0, ...name('fn'), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  return {
    call: instance.exports.fn as F,
    buffer: (instance.exports.memory as { buffer: ArrayBuffer }).buffer,
  };
}

/** Unsigned LEB128, as memory offsets, sizes and indices are written. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, as constants are written. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  while (true) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
