/**
 * An ArrayBuffer holding exactly `buf`'s bytes that may be transferred to another thread. Node
 * slices small Buffers out of a shared pool, which must not be transferred, so those are copied.
 */
export function transferable(buf: Uint8Array): ArrayBuffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.buffer instanceof ArrayBuffer) {
    return buf.buffer;
  }
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  return copy.buffer;
}
