import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';

/** Writes a zip at `dest` holding the file `src` under `nameInZip` (deflated). */
export async function zipOneFile(src: string, dest: string, nameInZip: string, signal?: AbortSignal): Promise<void> {
  const zip = new yazl.ZipFile();
  zip.addFile(src, nameInZip, { compress: true, mode: 0o100644 });
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(dest, { mode: 0o600 }), { signal });
}
