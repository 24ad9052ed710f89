/** A path as the file system takes it: text, or bytes once a name on the way is not UTF-8. */
export type FsPath = string | Buffer;

export function joinPath(dir: FsPath, name: string, nameRaw?: Buffer): FsPath {
  if (typeof dir === 'string' && !nameRaw) return dir === '/' ? `/${name}` : `${dir}/${name}`;
  const d = typeof dir === 'string' ? Buffer.from(dir, 'utf8') : dir;
  const tail = nameRaw ?? Buffer.from(name, 'utf8');
  return d.length === 1 && d[0] === 0x2f ? Buffer.concat([d, tail]) : Buffer.concat([d, Buffer.from('/'), tail]);
}

/** A path for messages and patterns; bytes that are not UTF-8 show as U+FFFD. */
export function showPath(p: FsPath): string {
  return typeof p === 'string' ? p : p.toString('utf8');
}

/** A path that crossed a thread boundary (a Buffer arrives as a plain Uint8Array). */
export function fromWire(p: string | Uint8Array): FsPath {
  return typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
}

/** A path as a map key: text as it is, bytes as hex behind a NUL (no text path holds one). */
export function pathKey(p: FsPath): string {
  return typeof p === 'string' ? p : `\0${p.toString('hex')}`;
}
