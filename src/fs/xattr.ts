import { createRequire } from 'node:module';
import type { Node } from './node.js';

type XattrModule = {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
  setAttributeSync(path: string, name: string, value: Buffer): void;
};

const xattr = createRequire(import.meta.url)('@napi-rs/xattr') as XattrModule;

/**
 * A file's extended attributes as restic stores them (values base64, as Go encodes []byte), or
 * undefined when it has none or the file system keeps none. Symlinks are not followed.
 */
export function readXattrs(path: string | Buffer): Node['extended_attributes'] {
  // The binding takes text paths only; a name that is not UTF-8 keeps its content, not its xattrs.
  if (typeof path !== 'string') return undefined;
  let names: string[];
  try {
    names = xattr.listAttributesSync(path);
  } catch {
    return undefined;
  }
  if (names.length === 0) return undefined;
  const out: NonNullable<Node['extended_attributes']> = [];
  for (const name of names.sort()) {
    try {
      const v = xattr.getAttributeSync(path, name);
      if (v) out.push({ name, value: v.toString('base64') });
    } catch {
      // An attribute removed while we read, or one we may not read (security.*): left out.
    }
  }
  return out.length > 0 ? out : undefined;
}

/** Sets a node's extended attributes; each is tried, and the first one the file system refuses is thrown after. */
export function writeXattrs(path: string | Buffer, attrs: Node['extended_attributes']): void {
  if (!attrs || attrs.length === 0 || typeof path !== 'string') return;
  let first: unknown;
  for (const a of attrs) {
    try {
      xattr.setAttributeSync(path, a.name, Buffer.from(a.value, 'base64'));
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
