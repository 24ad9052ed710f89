type TypedArray = Uint8Array | Uint32Array | Float64Array;

/** A typed array twice as long as `a`, holding `a`'s elements first: for columns that grow as rows are added. */
export function doubled<T extends TypedArray>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(Math.max(1, a.length * 2));
  b.set(a);
  return b;
}
