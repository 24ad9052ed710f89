import type { Readable } from 'node:stream';
import type tar from 'tar-stream';

/** Adds one entry and waits until its data has been taken, so only one file is open at a time (archive targets, and `dump` of a folder). */
export function addTarEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, body?: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    let sink: ReturnType<tar.Pack['entry']>;
    try {
      sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    } catch (err) {
      // The pack was torn down (the upload failed or was aborted).
      body?.destroy();
      reject(err as Error);
      return;
    }
    // streamx throws an error nobody listens for: when the pack is torn down, the entry fails with it.
    sink.on('error', (err: Error) => {
      body?.destroy();
      reject(err);
    });
    if (body === undefined) {
      if (header.type === 'file') sink.end(null);
      return;
    }
    body.on('error', (err) => {
      sink.destroy(err);
      reject(err);
    });
    body.on('data', (chunk: Buffer) => {
      if (!sink.write(chunk)) {
        body.pause();
        sink.once('drain', () => body.resume());
      }
    });
    body.on('end', () => sink.end(null));
  });
}

