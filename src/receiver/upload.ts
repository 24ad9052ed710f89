/**
 * Receiving one archive: stream it into a temporary file in the storage folder while hashing and
 * counting, sync it, and check that it is a zip. Memory stays flat whatever the size: the request
 * is read only as fast as the disk takes it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { CairnError } from '../errors.js';

const TEMP_PREFIX = '.cairn-upload-';
const TEMP_SUFFIX = '.part';
const TEMP_NAME = /^\.cairn-upload-[0-9a-f-]{36}\.part$/;

export interface ReceivedFile {
  tempPath: string;
  size: number;
  sha256: string;
}

/** The refusal of an archive over the size limit. */
export function tooLarge(maxSize: number): CairnError {
  return new CairnError('TOO_LARGE', `the file is larger than the receiver's limit of ${maxSize} bytes`);
}

/** Hashes and counts what passes through, and fails once more than `maxSize` bytes have passed. */
class Measure extends Transform {
  readonly #hash = createHash('sha256');
  readonly #maxSize: number;
  size = 0;

  constructor(maxSize: number) {
    super();
    this.#maxSize = maxSize;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.#maxSize) {
      done(tooLarge(this.#maxSize));
      return;
    }
    this.#hash.update(chunk);
    done(null, chunk);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

/**
 * Writes `input` to a new temporary file in `storage`, synced to disk. On any failure (a dropped
 * connection, the size limit, a full disk) the temporary file is removed before the error is thrown.
 */
export async function receiveToTemp(input: Readable, storage: string, maxSize: number): Promise<ReceivedFile> {
  const tempPath = path.join(storage, `${TEMP_PREFIX}${randomUUID()}${TEMP_SUFFIX}`);
  const measure = new Measure(maxSize);
  // flush: the file is synced before the stream closes, so a stored archive survives a power cut.
  const out = createWriteStream(tempPath, { flags: 'wx', mode: 0o600, flush: true });
  try {
    await pipeline(input, measure, out);
  } catch (err) {
    // The file may still be opening when the input fails; remove it only once it is closed.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    await fs.rm(tempPath, { force: true });
    throw err;
  }
  return { tempPath, size: measure.size, sha256: measure.digest() };
}

/** Removes temporary files a killed receiver left behind. Returns their names. */
export async function sweepTempFiles(storage: string): Promise<string[]> {
  const names = (await fs.readdir(storage)).filter((n) => TEMP_NAME.test(n));
  for (const n of names) await fs.rm(path.join(storage, n), { force: true });
  return names;
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, strictFileNames: false, validateEntrySizes: true }, (err, zip) => (err ? reject(err) : resolve(zip)));
  });
}

function localDataStart(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<number> {
  return new Promise((resolve, reject) => {
    zip.readLocalFileHeader(entry, { minimal: true }, (err, header) => (err ? reject(err) : resolve(header.fileDataStart)));
  });
}

/**
 * Checks that a file is a readable zip: its central directory parses, it lists at least one entry,
 * and every entry's local header and data lie within the file. Does not decompress anything.
 * Returns the number of entries.
 */
export async function checkZip(file: string): Promise<number> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(file);
  } catch (err) {
    throw new CairnError('BAD_INPUT', `the file is not a readable zip archive: ${(err as Error).message}`);
  }
  try {
    if (zip.entryCount === 0) throw new CairnError('BAD_INPUT', 'the zip archive holds no files');
    // One entry at a time, so a central directory of millions of entries takes no more memory than one.
    return await new Promise<number>((resolve, reject) => {
      let count = 0;
      zip.on('entry', (e: yauzl.Entry) => {
        localDataStart(zip, e).then((start) => {
          if (start + e.compressedSize > zip.fileSize) throw new Error(`entry ${e.fileName} runs past the end of the file`);
          count++;
          zip.readEntry();
        }, reject).catch(reject);
      });
      zip.on('end', () => resolve(count));
      zip.on('error', reject);
      zip.readEntry();
    });
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw new CairnError('BAD_INPUT', `the file is not a readable zip archive: ${(err as Error).message}`);
  } finally {
    zip.close();
  }
}
