import { FolderStore } from './folder-store.js';
import { S3Store } from './s3-store.js';
import { parseDestination } from './spec.js';
import type { ObjectStore } from './store.js';

/** Opens the store for a target destination (a folder path or `s3:http://host:port/bucket/prefix`). */
export function openStore(dest: string): ObjectStore {
  const d = parseDestination(dest);
  return d.type === 'folder' ? new FolderStore(d.path) : new S3Store(d.endpoint, d.bucket, d.prefix, dest);
}
