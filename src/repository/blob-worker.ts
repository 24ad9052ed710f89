/**
 * A blob worker: the CPU-heavy half of backup, restore and check, run on one thread per core.
 * For backup it reads a source file itself, chunks it, hashes each chunk, and seals the chunks
 * the repository does not have yet into its own data pack, which it hands to the main thread
 * when full. For restore and check it opens blobs out of pack bytes the main thread loaded, or,
 * from a local repository, out of the pack file, which it reads itself.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker, MAX_CHUNK, MIN_CHUNK } from '../chunker/chunker.js';
import { Key } from '../crypto/crypto.js';
import { ScratchCompressor, ScratchDecompressor } from '../compress/zstd.js';
import { LOADED } from '../util/worker.js';
import { CairnError, writesStop } from '../errors.js';
import { SMALL_FILE, keepsExisting, microseconds } from './worker-protocol.js';
import { MAX_HEADER, PackFileWriter, encodeListing, parsePackTail, type PackedBlob } from './pack.js';
import { SharedBlobView } from './master-index.js';
import { BlobClaims } from './claims.js';
import { hashId, type Id } from './id.js';
import type { BatchFileResult, CheckPackResult, FsOp, OpenBlob, OpenResult, ProbeResult, Reply, Request, RestoreBlob, RestoreBlobsResult, SaveResult, WorkerInit } from './worker-protocol.js';
import { applyMetadataSync } from '../fs/apply.js';
import { fromWire, showPath } from '../fs/fspath.js';
import { transferable } from '../util/transfer.js';
import { TreeFactsWriter } from './tree-facts.js';

const port = parentPort!;
/** Jobs that came before this module was ready for them: those that follow a prewarmed worker's settings. */
const early: Request[] = [];
let onJob: ((m: Request) => void) | null = null;
let onInit: ((init: WorkerInit) => void) | null = null;
port.on('message', (m: Request) => {
  if (m.op === 'init') onInit?.(m.init);
  else if (onJob) onJob(m);
  else early.push(m);
});
/** The pool's settings: as workerData, or, for a worker started ahead of its pool (see prewarmWorkers), its first message. */
const init: WorkerInit = (workerData as WorkerInit | null) ?? (await new Promise<WorkerInit>((resolve) => (onInit = resolve)));
const key = Key.fromRaw(init.key);
const chunker = new Chunker(BigInt(`0x${init.polynomial}`));
/** Blobs the repository holds (the main thread's index, shared) ... */
let stored = new SharedBlobView(init.index);
/** ... and blobs in this worker's packs that are not saved yet: the one being written and those handed over (by id). */
const mine = new Set<string>();
/** ... and new blobs another worker of this pool has taken on (see claims.ts). */
const claims = new BlobClaims(init.claims);
const unsavedPacks = new Map<Id, string[]>();
/** Packs handed over but not yet saved; past this many the worker waits, so staged files stay few. */
const MAX_UNSAVED_PACKS = 1;
let unsaved = 0;
let packSavedWaiter: (() => void) | null = null;
const compressor = init.compression === 'off' ? null : new ScratchCompressor(init.compression);
const decompressor = new ScratchDecompressor();
/** The data pack being written: a staged file that goes to the main thread when full. */
let pack: PackFileWriter | null = null;
let packSeq = 0;
/** Where each pack gathers its small blobs before writing them (see PackFileWriter). */
const gatherBuf = Buffer.allocUnsafe(1024 * 1024);
const READ_SIZE = 1024 * 1024;
let readBuf = Buffer.allocUnsafe(MAX_CHUNK + READ_SIZE);

function post(msg: Reply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

/** Errors that lost a pack: the pool fails as a whole (see the `fatal` reply). */
const fatal = new WeakSet<Error>();

/** Failures writing a staged pack are the repository's, not the source file's: they end the backup. */
function packFailure(err: unknown): CairnError {
  pack?.abort();
  pack = null;
  const e = err instanceof CairnError ? err : new CairnError('BACKEND_UNAVAILABLE', `writing a pack in ${init.staging.folder} failed: ${(err as Error).message}`, { cause: err });
  fatal.add(e);
  return e;
}

async function emitPack(): Promise<void> {
  if (!pack || pack.count === 0) return;
  let done;
  try {
    done = pack.finish();
  } catch (err) {
    throw packFailure(err);
  }
  const file = pack.path;
  pack = null;
  unsaved++;
  unsavedPacks.set(done.id, done.blobs.map((b) => b.id));
  const header = transferable(done.header);
  post({ op: 'pack', id: done.id, path: file, length: done.length, header, count: done.blobs.length }, [header]);
  while (unsaved > MAX_UNSAVED_PACKS) await new Promise<void>((r) => (packSavedWaiter = r));
}

/** Hashes a chunk and, when new, seals it into the current pack (the chunk's bytes are encrypted in place). */
async function saveChunk(chunk: Buffer, r: SaveResult): Promise<void> {
  const id = hashId(chunk);
  r.content.push(id);
  if (mine.has(id) || stored.has('data', id) || !claims.claim(id)) return;
  mine.add(id);
  let plain = chunk;
  let uncompressedLength: number | undefined;
  if (compressor) {
    const packed = compressor.compress(chunk);
    if (packed.length < chunk.length) {
      plain = packed;
      uncompressedLength = chunk.length;
    }
  }
  let sealedLength: number;
  try {
    pack ??= new PackFileWriter(key, path.join(init.staging.folder, `${init.staging.prefix}${packSeq++}`), gatherBuf);
    sealedLength = pack.add('data', id, plain, uncompressedLength);
  } catch (err) {
    throw packFailure(err);
  }
  r.blobsNew++;
  r.bytesNew += chunk.length;
  r.bytesPacked += sealedLength;
  if (pack.size >= init.packSize) await emitPack();
}

function openFlags(): number {
  return fs.constants.O_RDONLY | (init.noatime ? fs.constants.O_NOATIME : 0);
}

/** Opens a source file for reading, without moving its access time when root (O_NOATIME where the file system allows it). */
function openSource(path: string | Buffer): number {
  let fd: number;
  try {
    fd = fs.openSync(path, openFlags());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    fd = fs.openSync(path, fs.constants.O_RDONLY);
  }
  return fd;
}

/** What saving a file of `size` bytes produced, before anything is saved. */
function newResult(size: number): SaveResult {
  return { content: [], size, blobsNew: 0, bytesNew: 0, bytesPacked: 0 };
}

async function saveFile(at: string | Uint8Array): Promise<SaveResult> {
  const r = newResult(0);
  const fd = openSource(fromWire(at));
  try {
    chunker.reset();
    // `start` is where the current chunk begins in readBuf; `end` is how much of readBuf is filled.
    let start = 0;
    let end = 0;
    let small = true;
    for (;;) {
      if (end + READ_SIZE > readBuf.length) {
        readBuf.copy(readBuf, 0, start, end);
        end -= start;
        start = 0;
      }
      const n = fs.readSync(fd, readBuf, end, READ_SIZE, null);
      if (n === 0) break;
      const from = end;
      end += n;
      r.size += n;
      if (small && r.size < MIN_CHUNK) continue;
      if (small) {
        small = false;
        const base = start;
        for (const cut of chunker.push(readBuf.subarray(base, end))) {
          await saveChunk(readBuf.subarray(start, base + cut), r);
          start = base + cut;
        }
        continue;
      }
      for (const cut of chunker.push(readBuf.subarray(from, end))) {
        await saveChunk(readBuf.subarray(start, from + cut), r);
        start = from + cut;
      }
    }
    if (end > start) await saveChunk(readBuf.subarray(start, end), r);
  } finally {
    fs.closeSync(fd);
  }
  return r;
}

/** Room for a small file and one byte more, which tells a file that grew past SMALL_FILE. */
const SLOT = SMALL_FILE + 1;
/** One byte past what was read, to see that a file ends there. */
const eofProbe = Buffer.alloc(1);
/**
 * Room for small files' bytes, one SLOT each, carved from slabs this thread keeps for its life and
 * taken last-freed first. A batch takes a slot per file when it arrives and gives them back when
 * it is done, so the slabs grow to the most files this worker has had in flight at once (the main
 * thread bounds that) and no more. Buffers made per batch and dropped instead sat unreachable in
 * the old generation until a full collection: with the batches a cold cache keeps in flight, 60-70
 * slabs of 2 MiB per worker went that way in a few seconds of the benchmark's small files.
 */
const freeSlots: Buffer[] = [];
const SLOTS_PER_SLAB = 32;

function takeSlots(n: number): Buffer[] {
  while (freeSlots.length < n) {
    const slab = Buffer.allocUnsafeSlow(SLOTS_PER_SLAB * SLOT);
    for (let i = SLOTS_PER_SLAB - 1; i >= 0; i--) freeSlots.push(slab.subarray(i * SLOT, (i + 1) * SLOT));
  }
  return freeSlots.splice(freeSlots.length - n, n);
}

/** A small file opened when its batch arrived, with its read under way on libuv's threads. */
type Started = { fd: number; read: Promise<number> } | { error: NodeJS.ErrnoException };

/** A batch of small files whose reads started when it arrived (see `startBatch`). */
interface StartedBatch {
  /** Per file, the slot its bytes are read into. */
  slots: Buffer[];
  files: Started[];
}

/**
 * Opens the small files of a batch and reads each into a slot of its own (see takeSlots). From
 * a cold cache a small file read one at a time is a disk round trip with the core idle, so while
 * reads are slow, a batch's reads all start when it arrives, on libuv's threads, and run while
 * earlier files are hashed and compressed (two batches are queued per worker); from the page
 * cache a read through libuv's threads costs several times a read made here, so then they are
 * made here, each timed. Opening does not wait for the disk (the walk has just read the folder
 * and its inodes); an open or read that fails is reported in the file's place.
 */
function startBatch(paths: (string | Uint8Array)[]): StartedBatch {
  const slots = takeSlots(paths.length);
  const ahead = readingAhead();
  if (coldBatches > 0) coldBatches--;
  let slow = 0;
  const files = paths.map((at, k): Started => {
    let fd: number;
    try {
      fd = openSource(fromWire(at));
    } catch (err) {
      return { error: err as NodeJS.ErrnoException };
    }
    if (ahead) {
      const read = new Promise<number>((resolve, reject) => fs.read(fd, slots[k], 0, SLOT, 0, (err, n) => (err ? reject(err) : resolve(n))));
      read.catch(() => undefined);
      return { fd, read };
    }
    const t = performance.now();
    try {
      const n = fs.readSync(fd, slots[k], 0, SLOT, 0);
      if (performance.now() - t > SLOW_READ_MS) slow++;
      return { fd, read: Promise.resolve(n) };
    } catch (err) {
      fs.closeSync(fd);
      return { error: err as NodeJS.ErrnoException };
    }
  });
  if (!ahead && slow >= Math.max(2, paths.length / 8)) coldBatches = COLD_BATCHES;
  return { slots, files };
}
/** A read from the page cache takes a few microseconds; one from a disk, a tenth of a millisecond or more. */
const SLOW_READ_MS = 0.2;
/** Batches read ahead once reads were found slow, before a batch is read here again to see. */
const COLD_BATCHES = 128;
let coldBatches = 0;

/** Whether batches are read ahead now (see `startBatch`). */
function readingAhead(): boolean {
  return init.readAhead === 'always' || coldBatches > 0;
}

/**
 * Saves small files one after another, as their reads (started by `startBatch`) complete, and
 * answers once for all of them. A file that cannot be read gets its error in its place; one that
 * grew past SMALL_FILE, or whose read stopped short, is read again whole; a failure of the pack
 * (the repository's) fails the batch. Every file is closed, whatever happens.
 */
async function saveFiles(paths: (string | Uint8Array)[], sizes: number[], started: StartedBatch): Promise<BatchFileResult[]> {
  const out: BatchFileResult[] = [];
  const closed = new Array<boolean>(paths.length).fill(false);
  try {
    for (let k = 0; k < paths.length; k++) {
      const f = started.files[k];
      try {
        if ('error' in f) throw f.error;
        let n: number;
        try {
          n = await f.read;
          // A read may stop short of the end (network and FUSE file systems may): only a read
          // that finds nothing more says the file is whole, unless it gave the size the walk saw
          // (then the file is saved as it was seen, and its size and content agree). The second
          // read per file cost the benchmark's 37,000 small files ~0.1 CPU s.
          if (n > 0 && n <= SMALL_FILE && n !== sizes[k] && fs.readSync(f.fd, eofProbe, 0, 1, n) > 0) n = SLOT;
        } finally {
          fs.closeSync(f.fd);
          closed[k] = true;
        }
        if (n > SMALL_FILE) out.push(await saveFile(paths[k]));
        else if (n === 0) out.push(newResult(0));
        else out.push(await saveBytes(started.slots[k].subarray(0, n)));
      } catch (err) {
        if (err instanceof CairnError) throw err;
        out.push({ error: (err as Error).message, errno: (err as NodeJS.ErrnoException).code });
      }
    }
  } finally {
    // A failed batch leaves files it did not get to: each is closed once its read is done, and
    // the slots are taken again only then.
    for (let k = 0; k < paths.length; k++) {
      const f = started.files[k];
      if (closed[k] || 'error' in f) continue;
      await f.read.catch(() => 0);
      fs.closeSync(f.fd);
    }
    freeSlots.push(...started.slots);
  }
  return out;
}

/** One chunk, cut by the caller, or a whole file smaller than a chunk: one blob. */
async function saveBytes(data: Buffer): Promise<SaveResult> {
  const r = newResult(data.length);
  await saveChunk(data, r);
  return r;
}

function openBlobs(data: ArrayBuffer, blobs: OpenBlob[]): OpenResult {
  const buf = Buffer.from(data);
  const plains: Buffer[] = [];
  const lengths: number[] = [];
  const errors: (string | null)[] = [];
  for (const b of blobs) {
    try {
      const p = Buffer.from(openBlob(buf.subarray(b.offset, b.offset + b.length), b));
      plains.push(p);
      lengths.push(p.length);
      errors.push(null);
    } catch (err) {
      lengths.push(-1);
      errors.push((err as Error).message);
    }
  }
  const out = plains.length === 1 ? plains[0] : Buffer.concat(plains);
  return { data: transferable(out), lengths, errors };
}

/**
 * Verifies, decrypts (in place: `sealed` holds plaintext afterwards), decompresses and hash-checks
 * one blob. The result is a view into `sealed` or into the decompressor's scratch buffer, valid
 * until the next call: loaded ranges and plaintexts leave no garbage behind.
 */
function openBlob(sealed: Buffer, b: OpenBlob): Buffer {
  if (sealed.length !== b.length) throw new CairnError('INTEGRITY', `blob ${b.id} is truncated`);
  let plain: Buffer;
  try {
    plain = key.openInPlace(sealed);
  } catch {
    throw new CairnError('INTEGRITY', `blob ${b.id} fails verification (damaged ciphertext)`);
  }
  if (b.uncompressedLength !== undefined) {
    try {
      plain = decompressor.decompress(plain, b.uncompressedLength);
    } catch (err) {
      throw new CairnError('INTEGRITY', `blob ${b.id}: ${(err as Error).message}`);
    }
  }
  if (hashId(plain) !== b.id) throw new CairnError('INTEGRITY', `blob ${b.id} has the wrong content hash`);
  return plain;
}

/** Checks a pack loaded whole by the main thread (see checkPackBytes). */
function checkPack(id: string, data: ArrayBuffer, length: number, trees: boolean): CheckPackResult {
  const buf = Buffer.from(data, 0, length);
  return checkPackBytes(id, length, (pos, n) => buf.subarray(pos, pos + n), trees);
}

/**
 * Checks a pack stored as a file on this machine, which it reads here piece by piece, so that no
 * pack is ever held whole (the main thread's loaded packs took ~30 MiB of check's peak).
 */
function checkPackFile(id: string, file: string, trees: boolean): CheckPackResult {
  const fd = openSource(file);
  try {
    return checkPackBytes(id, fs.fstatSync(fd).size, (pos, n) => bytesAt(fd, pos, n), trees);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks a pack of `size` bytes that `read` gives piece by piece (`n` bytes from `pos`, valid
 * until the next read): the header from the tail first, then each blob, which is added to the
 * pack's hash before it is opened (decrypted in place), so every byte is read and hashed once. A
 * pack whose header cannot be read is read through for its hash. With `trees`, the facts of each
 * sound tree blob come back too (see tree-facts.ts).
 */
function checkPackBytes(id: string, size: number, read: (pos: number, n: number) => Buffer, trees: boolean): CheckPackResult {
  const errors: string[] = [];
  const facts = trees ? new TreeFactsWriter() : null;
  const hash = createHash('sha256');
  let listing: Uint8Array = new Uint8Array(0);
  let tail = Buffer.alloc(0);
  if (size >= 4) {
    // A length past MAX_HEADER is refused by parsePackTail, from the same four bytes.
    const length = read(size - 4, 4).readUInt32LE(0);
    const n = Math.min(size, Math.min(length, MAX_HEADER) + 4);
    tail = Buffer.from(read(size - n, n));
  }
  let blobs: PackedBlob[] | null = null;
  try {
    const header = parsePackTail(key, tail, size, id);
    if ('need' in header) errors.push(`pack ${id}: header does not fit the file`);
    else blobs = header.blobs;
  } catch (err) {
    errors.push((err as Error).message);
  }
  let pos = 0;
  if (blobs) {
    // parsePackTail checked that the blobs lie one after another from the start and end where the
    // header begins. They are read a run at a time (those within READ_SIZE of the run's first, or
    // one larger blob): a read and a hash update per small blob cost more than the bytes did.
    for (let i = 0; i < blobs.length; ) {
      const from = blobs[i].offset;
      let j = i + 1;
      while (j < blobs.length && blobs[j].offset + blobs[j].length - from <= READ_SIZE) j++;
      const last = blobs[j - 1];
      const run = read(from, last.offset + last.length - from);
      hash.update(run);
      for (; i < j; i++) {
        const b = blobs[i];
        try {
          const plain = openBlob(run.subarray(b.offset - from, b.offset - from + b.length), b);
          if (facts && b.type === 'tree') facts.add(b.id, plain);
        } catch (err) {
          errors.push(`pack ${id}: ${b.type} ${(err as Error).message}`);
        }
      }
    }
    hash.update(tail);
    pos = size;
    // Its own buffer, exactly the records: a structured clone copies the whole ArrayBuffer.
    listing = encodeListing(blobs);
  }
  for (; pos < size; pos += READ_SIZE) hash.update(read(pos, Math.min(READ_SIZE, size - pos)));
  const actual = hash.digest('hex');
  if (actual !== id) errors.unshift(`pack ${id}: content hash is ${actual}, the file is damaged`);
  return facts ? { listing, errors, trees: facts.finish() } : { listing, errors };
}

/** Fills `into` from `pos` of the file open at `fd`; a file that ends before is damage (`INTEGRITY`). */
function readAt(fd: number, into: Buffer, pos: number): void {
  for (let got = 0; got < into.length; ) {
    const n = fs.readSync(fd, into, got, into.length - got, pos + got);
    if (n === 0) throw new CairnError('INTEGRITY', `the file ends at ${pos + got} bytes, before ${pos + into.length}`);
    got += n;
  }
}

/** `length` bytes from `pos` of the file open at `fd`, read into the read buffer (grown when it is too small). */
function bytesAt(fd: number, pos: number, length: number): Buffer {
  if (readBuf.length < length) readBuf = Buffer.allocUnsafe(length);
  const view = readBuf.subarray(0, length);
  readAt(fd, view, pos);
  return view;
}

/** Whether the file at `path` already holds exactly these blobs (for resuming a restore). */
function verifyFile(path: string | Buffer, blobs: { id: string; size: number }[], size = blobs.reduce((s, b) => s + b.size, 0)): boolean {
  let fd: number;
  try {
    // A symlink where the file goes is not the file, whatever it points to.
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size !== size) return false;
    let pos = 0;
    for (const b of blobs) {
      if (readBuf.length < b.size) readBuf = Buffer.allocUnsafe(b.size);
      const view = readBuf.subarray(0, b.size);
      let got = 0;
      while (got < b.size) {
        const n = fs.readSync(fd, view, got, b.size - got, pos + got);
        if (n === 0) return false;
        got += n;
      }
      if (hashId(view) !== b.id) return false;
      pos += b.size;
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * What is at a restored file's place (see ProbeResult), as restic's --overwrite reads it: `never`
 * leaves anything there; `if-newer` anything whose modification time is not older than the
 * snapshot's; `if-changed` takes a regular file of the same size and modification time as right;
 * otherwise a regular file is right when it holds the blobs. Times are compared to the
 * microsecond, which is what a restore sets (see applyMetadataSync).
 */
function probeFile(o: Extract<FsOp, { op: 'probe' }>): ProbeResult {
  const at = fromWire(o.path);
  let st: fs.BigIntStats;
  try {
    st = fs.lstatSync(at, { bigint: true });
  } catch (err) {
    // Nothing there, or a file where a folder above it goes (replaced before anything is written).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'absent';
    throw err;
  }
  if (keepsExisting(o.overwrite, o.mtime, st.mtimeNs)) return 'skip';
  if (st.isDirectory()) return fs.readdirSync(at).length > 0 ? 'busy-dir' : 'differs';
  if (!st.isFile()) return 'differs';
  if (o.overwrite === 'if-changed' && Number(st.size) === o.size && o.mtime !== null && Math.abs(microseconds(o.mtime) - microseconds(st.mtimeNs)) <= 1) return 'same';
  return verifyFile(at, o.blobs, o.size) ? 'same' : 'differs';
}

let zero: Buffer | null = null;

function isZero(b: Buffer): boolean {
  zero ??= Buffer.alloc(MAX_CHUNK);
  return b.length <= zero.length && b.equals(zero.subarray(0, b.length));
}

/** Writes `data` at `offset`; a write that creates the file gives it its full size first (holes stay holes). */
function writeDest(at: string | Uint8Array, offset: number, data: Buffer, create: number | undefined): void {
  const fd = fs.openSync(fromWire(at), create !== undefined ? 'w' : 'r+');
  try {
    const zero = isZero(data);
    // A created file gets its full size up front only when the write does not: holes stay holes.
    if (create !== undefined && (zero || create !== offset + data.length)) fs.ftruncateSync(fd, create);
    if (zero) return;
    let done = 0;
    while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, offset + done);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Opens and verifies each blob out of pack bytes (`buf`, which starts at `base` in the pack) and
 * writes it wherever it goes; adds each blob's error (or null) and the bytes written to `out`.
 * A write that finds the target full, read-only or gone sets `out.stopped` and ends it (see
 * RestoreBlobsResult).
 */
function restoreBlobs(buf: Buffer, blobs: RestoreBlob[], base = 0, out: RestoreBlobsResult = { errors: [], written: 0 }): RestoreBlobsResult {
  for (const b of blobs) {
    if (out.stopped) break;
    let plain: Buffer;
    try {
      plain = openBlob(buf.subarray(b.offset - base, b.offset - base + b.length), b);
    } catch (err) {
      out.errors.push((err as Error).message);
      continue;
    }
    let error: string | null = null;
    for (const d of b.dests) {
      try {
        writeDest(d.path, d.offset, plain, d.create);
        out.written += plain.length;
      } catch (err) {
        const stop = writesStop(err);
        if (stop) {
          // Every later write would fail alike: the blobs from this one on are left untried.
          out.stopped = { code: stop.code, message: `${stop.why} writing ${showPath(fromWire(d.path))}` };
          return out;
        }
        error = `writing ${showPath(fromWire(d.path))}: ${(err as Error).message}`;
      }
    }
    out.errors.push(error);
  }
  return out;
}

/**
 * restoreBlobs for blobs (in pack order, offsets in the file) of a pack stored in the local file
 * `file`, read here a run at a time into the read buffer: the blobs that end within READ_SIZE of
 * the run's first, or a larger blob alone. A read that fails fails the blobs of its run.
 */
function restoreBlobsFile(file: string, blobs: RestoreBlob[]): RestoreBlobsResult {
  const out: RestoreBlobsResult = { errors: [], written: 0 };
  const fd = openSource(file);
  try {
    for (let i = 0; i < blobs.length && !out.stopped; ) {
      const from = blobs[i].offset;
      let end = from + blobs[i].length;
      let j = i + 1;
      while (j < blobs.length && blobs[j].offset >= from && blobs[j].offset + blobs[j].length - from <= READ_SIZE) end = Math.max(end, blobs[j].offset + blobs[j++].length);
      const run = blobs.slice(i, j);
      i = j;
      let bytes: Buffer;
      try {
        bytes = bytesAt(fd, from, end - from);
      } catch (err) {
        for (let k = 0; k < run.length; k++) out.errors.push((err as Error).message);
        continue;
      }
      restoreBlobs(bytes, run, from, out);
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function fsBatch(ops: FsOp[]): (string | null | boolean | { probe: ProbeResult })[] {
  return ops.map((o) => {
    try {
      switch (o.op) {
        case 'create': {
          const fd = fs.openSync(fromWire(o.path), 'w');
          try {
            if (o.size > 0) fs.ftruncateSync(fd, o.size);
          } finally {
            fs.closeSync(fd);
          }
          return null;
        }
        case 'check':
          return verifyFile(fromWire(o.path), o.blobs, o.size);
        case 'probe':
          return { probe: probeFile(o) };
        case 'meta':
          applyMetadataSync(fromWire(o.path), o.node, { owner: o.owner });
          return null;
        default:
          return 'unknown operation';
      }
    } catch (err) {
      // A target with no room left, read-only or gone fails the whole batch: every later
      // operation would fail alike.
      const stop = o.op === 'create' || o.op === 'meta' ? writesStop(err) : null;
      if (stop) throw new CairnError(stop.code, `${stop.why} ${o.op === 'create' ? 'creating' : 'setting the metadata of'} ${showPath(fromWire(o.path))}`);
      return (err as Error).message;
    }
  });
}

let queue: Promise<void> = Promise.resolve();

async function handle(m: Request): Promise<void> {
  switch (m.op) {
    case 'file':
      return reply(m.seq, () => saveFile(m.path));
    case 'buffer':
      return reply(m.seq, () => saveBytes(Buffer.from(m.data)));
    case 'flush':
      return reply(m.seq, async () => {
        await emitPack();
        return null;
      });
    case 'open': {
      const seq = m.seq;
      try {
        const res = openBlobs(m.data, m.blobs);
        post({ op: 'done', seq, result: res }, [res.data]);
      } catch (err) {
        post({ op: 'error', seq, message: (err as Error).message });
      }
      return;
    }
    case 'checkPack':
      return reply(m.seq, async () => checkPack(m.id, m.data, m.length, !!m.trees), m.data);
    case 'checkPackFile':
      return reply(m.seq, async () => checkPackFile(m.id, m.path, !!m.trees));
    case 'verifyFile':
      return reply(m.seq, async () => verifyFile(m.path, m.blobs));
    case 'restoreBlobs':
      return reply(m.seq, async () => restoreBlobs(Buffer.from(m.data), m.blobs), m.data);
    case 'restoreBlobsFile':
      return reply(m.seq, async () => restoreBlobsFile(m.path, m.blobs));
    case 'fsBatch':
      return reply(m.seq, async () => fsBatch(m.ops));
    default:
      return;
  }
}

/** Posts the job's result; `lent`, a buffer the main thread loaded, goes back with it to be loaded into again. */
async function reply(seq: number, fn: () => Promise<unknown>, lent?: ArrayBuffer): Promise<void> {
  const back = lent ? [lent] : [];
  try {
    post({ op: 'done', seq, result: await fn(), lent }, back);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: string };
    post({ op: 'error', seq, message: e.message, code: err instanceof CairnError ? err.code : undefined, errno: err instanceof CairnError ? undefined : e.code, lent, fatal: fatal.has(e) || undefined }, back);
  }
}

onJob = (m: Request): void => {
  if (m.op === 'index') {
    stored = new SharedBlobView(m.table);
    return;
  }
  if (m.op === 'packSaved') {
    // The main thread added the pack to the shared table before it said so.
    for (const id of unsavedPacks.get(m.id) ?? []) mine.delete(id);
    unsavedPacks.delete(m.id);
    unsaved--;
    const w = packSavedWaiter;
    packSavedWaiter = null;
    w?.();
    return;
  }
  if (m.op === 'files') {
    // Read ahead (from a cold cache) as the batch arrives, while earlier jobs run; else when its turn comes.
    if (readingAhead()) {
      const started = startBatch(m.paths);
      queue = queue.then(() => reply(m.seq, () => saveFiles(m.paths, m.sizes, started)));
    } else {
      queue = queue.then(() => reply(m.seq, () => saveFiles(m.paths, m.sizes, startBatch(m.paths))));
    }
    return;
  }
  // Jobs run one after another: the pack and the read buffer belong to one job at a time.
  queue = queue.then(() => handle(m));
};
for (const m of early.splice(0)) onJob(m);

post(LOADED);
