import { createRequire } from 'node:module';
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import { CairnError } from '../errors.js';

/** restic's `--compression`: `auto` is fast and good, `max` is slow and small, `off` stores blobs as they are. */
export type CompressionMode = 'auto' | 'off' | 'max';

export const COMPRESSION_MODES: readonly CompressionMode[] = ['auto', 'off', 'max'];

/** What is compressed: file contents, or the repository's own JSON (trees, index files, snapshots). */
export type Content = 'data' | 'json';

/**
 * File contents at level 3: levels 1-2 run ~10% faster but made the benchmark repository 2% larger
 * than restic's. JSON at level 1, which is both faster and smaller on it: the benchmark's trees
 * take 3.49 MB against 3.55 at level 3, an index file 2.02 MB against 2.20 in half the time (its
 * repeats are long, which level 1's longer minimum match finds as well, at less cost).
 */
const LEVELS: Record<Content, Record<Exclude<CompressionMode, 'off'>, number>> = {
  data: { auto: 3, max: 19 },
  json: { auto: 1, max: 19 },
};

/** Compresses `data` with zstd at the mode's level for its content; never called with mode `off`. */
export function compress(data: Uint8Array, mode: Exclude<CompressionMode, 'off'> = 'auto', content: Content = 'data'): Buffer {
  return zstdCompress(data, { compressionLevel: LEVELS[content][mode] });
}

/**
 * Decompresses a zstd frame. `expectedSize`, when known (pack headers record it), bounds memory
 * and is checked, so a damaged or hostile blob cannot make us allocate without limit.
 */
export function decompress(data: Uint8Array, expectedSize?: number): Buffer {
  if (expectedSize !== undefined) {
    // One context for the thread, as zstd advises: making one per call cost more than decompressing a tree.
    sharedDctx ??= new (binding().DCtx)();
    return decompressInto(sharedDctx, Buffer.allocUnsafe(expectedSize + 1), data, expectedSize);
  }
  try {
    return zstdDecompress(data);
  } catch (err) {
    throw new CairnError('INTEGRITY', `zstd decompression failed: ${(err as Error).message}`);
  }
}

let sharedDctx: DCtx | undefined;

/**
 * Decompresses into `room` (at least one byte longer than `expectedSize`: room beyond the expected
 * size tells a frame that is too long from one that fits); a view of it.
 */
function decompressInto(dctx: DCtx, room: Buffer, data: Uint8Array, expectedSize: number): Buffer {
  let n: number;
  try {
    n = dctx.decompress(room.subarray(0, expectedSize + 1), data);
  } catch (err) {
    throw new CairnError('INTEGRITY', `zstd decompression failed: ${(err as Error).message}`);
  }
  if (n !== expectedSize) throw new CairnError('INTEGRITY', `decompressed size ${n} differs from the recorded ${expectedSize}`);
  return room.subarray(0, n);
}

export function parseCompressionMode(s: string): CompressionMode {
  if ((COMPRESSION_MODES as readonly string[]).includes(s)) return s as CompressionMode;
  throw new CairnError('BAD_INPUT', `invalid compression mode ${JSON.stringify(s)}: use auto, off or max`);
}

interface CCtx {
  setParameter(param: number, value: number): void;
  setPledgedSrcSize(size: number): void;
  compress2(dst: Uint8Array, src: Uint8Array): number;
  /** [bytes left to flush, bytes written to dst, bytes read from src] */
  compressStream2(dst: Uint8Array, src: Uint8Array, end: number): [number, number, number];
}
interface DCtx {
  decompress(dst: Uint8Array, src: Uint8Array): number;
}
interface ZstdBinding {
  CCtx: new () => CCtx;
  DCtx: new () => DCtx;
  CParameter: { compressionLevel: number; chainLog: number; hashLog: number };
  EndDirective: { continue: number; end: number };
  compressBound(size: number): number;
}

/** zstd-napi's native binding: contexts that are reused, and output into buffers we own. */
function binding(): ZstdBinding {
  return createRequire(import.meta.url)('zstd-napi/binding.js') as ZstdBinding;
}

/** Streaming input and output go in pieces of this size (zstd's recommended sizes are ~128 KiB). */
const STREAM_PIECE = 128 * 1024;

/**
 * Compresses bytes that `produce` hands to its sink piece by piece (a piece may be reused once the
 * sink returns) into one zstd frame that records `size`, their total, as one-shot frames do
 * (readers then allocate the result once), behind `head` (the encoding byte of restic's unpacked
 * files). JSON's level: for index files, which are never one string or one buffer here.
 */
export function compressStream(size: number, produce: (sink: (piece: Uint8Array) => void) => void, head: Uint8Array, mode: Exclude<CompressionMode, 'off'> = 'auto'): Buffer {
  const b = binding();
  const cctx = new b.CCtx();
  cctx.setParameter(b.CParameter.compressionLevel, LEVELS.json[mode]);
  cctx.setPledgedSrcSize(size);
  const pieces: Buffer[] = [Buffer.from(head)];
  let out = Buffer.allocUnsafe(STREAM_PIECE);
  let used = 0;
  const feed = (src: Uint8Array, end: number): void => {
    let input = src;
    for (;;) {
      const [left, produced, consumed] = cctx.compressStream2(out.subarray(used), input, end);
      used += produced;
      input = input.subarray(consumed);
      if (used === out.length) {
        pieces.push(out);
        out = Buffer.allocUnsafe(STREAM_PIECE);
        used = 0;
      }
      if (input.length === 0 && (end === b.EndDirective.continue || left === 0)) return;
    }
  };
  produce((piece) => feed(piece, b.EndDirective.continue));
  feed(new Uint8Array(0), b.EndDirective.end);
  pieces.push(out.subarray(0, used));
  return Buffer.concat(pieces);
}

/**
 * Where zstd changes its parameters with the input's size (its tables of compression parameters
 * have rows for inputs up to 16 KiB, 128 KiB and 256 KiB, and one for larger ones).
 */
const SIZE_CLASSES = [16 * 1024, 128 * 1024, 256 * 1024];

/**
 * Level 3's two hash tables for inputs over 256 KiB, in `auto` mode: 2^16 and 2^13 entries instead
 * of zstd's 2^17 and 2^16, so that they stay in the core's cache. On the benchmark corpus's unique
 * compressible 1 MiB pieces (310 MiB, `zstd -b3 -B1048576`): 284-296 MB/s against 244-260 MB/s
 * for 0.24% more output (96.72 against 96.49 MB); in the benchmark's repository 0.4 MiB more
 * (456.2 MiB, restic's 459.3). 2^15 and 2^13 ran 292-315 MB/s for 1.1 MiB more; 2^14 entries in
 * the second table alone (the setting before) 10% faster than zstd's for 0.04% more.
 */
const LARGE_CHAIN_LOG = 13;
const LARGE_HASH_LOG = 16;

/**
 * The least a scratch buffer grows to: the largest chunk the chunker cuts, compressed or not. A
 * buffer that grew to each larger chunk in turn left the one before it as garbage in the old
 * generation, where a worker's few objects let it wait long for a full collection (~13 MiB of
 * dead buffers per worker in the benchmark's initial backup). Pages of a fresh buffer are touched
 * only as they are written, so one of this size costs no more memory than the chunks it holds.
 */
const SCRATCH_FLOOR = 8 * 1024 * 1024 + 64 * 1024;

/** `scratch`, or a larger buffer that holds `size` bytes (see SCRATCH_FLOOR). */
function scratchFor(scratch: Buffer, size: number): Buffer {
  return scratch.length >= size ? scratch : Buffer.allocUnsafeSlow(Math.max(size, SCRATCH_FLOOR));
}

/** Chunks of at least this size are probed for being incompressible (see ScratchCompressor). */
const PROBE_MIN = 64 * 1024;
const PROBE_SAMPLES = 4;
const PROBE_SAMPLE = 4096;
const PROBE_RATIO = 0.98;

/**
 * A compressor that writes into one scratch buffer it keeps: backups compress every chunk, and a
 * fresh output buffer per chunk is garbage the JavaScript heap frees late. The result is a view
 * into the scratch buffer, valid until the next call.
 *
 * One zstd context per size class: a context sizes its tables for the input, and after 128 small
 * inputs in a row it gives back a workspace that is too large, so one context for small files and
 * large chunks alike was freed and allocated again (fresh pages, zeroed as they fault in) each
 * time a run of small files met a large file.
 */
export class ScratchCompressor {
  readonly #binding: ZstdBinding;
  readonly #level: number;
  readonly #cctx: CCtx[] = [];
  #scratch: Buffer = Buffer.alloc(0);

  readonly #probe: boolean;
  #probeCtx: CCtx | undefined;
  #probeOut: Buffer = Buffer.alloc(0);

  constructor(mode: Exclude<CompressionMode, 'off'>) {
    this.#binding = binding();
    this.#level = LEVELS.data[mode];
    // `max` asks for the smallest repository whatever it costs: every chunk goes through zstd.
    this.#probe = mode === 'auto';
  }

  /**
   * The chunk compressed, or (in `auto` mode, for a chunk whose samples zstd cannot shrink) the
   * chunk itself, which the caller stores as it is, as it does any chunk that does not get smaller.
   */
  compress(data: Uint8Array): Buffer {
    if (this.#probe && data.length >= PROBE_MIN && this.#incompressible(data)) return Buffer.from(data.buffer, data.byteOffset, data.length);
    const bound = this.#binding.compressBound(data.length);
    this.#scratch = scratchFor(this.#scratch, bound);
    const n = this.#context(data.length).compress2(this.#scratch, data);
    return this.#scratch.subarray(0, n);
  }

  /**
   * Whether PROBE_SAMPLES samples of PROBE_SAMPLE bytes, spread over the chunk, all stay above
   * PROBE_RATIO of their size at zstd's fastest level: compressed archives, media and encrypted
   * data, which level 3 would only spend time on (a third of the benchmark corpus's bytes took a
   * fifth of its compression time to gain nothing).
   */
  #incompressible(data: Uint8Array): boolean {
    this.#probeCtx ??= this.#newContext(1);
    if (this.#probeOut.length === 0) this.#probeOut = Buffer.allocUnsafe(this.#binding.compressBound(PROBE_SAMPLE));
    const step = Math.floor((data.length - PROBE_SAMPLE) / (PROBE_SAMPLES - 1));
    for (let i = 0; i < PROBE_SAMPLES; i++) {
      const sample = data.subarray(i * step, i * step + PROBE_SAMPLE);
      if (this.#probeCtx.compress2(this.#probeOut, sample) < PROBE_RATIO * PROBE_SAMPLE) return false;
    }
    return true;
  }

  #newContext(level: number): CCtx {
    const cctx = new this.#binding.CCtx();
    cctx.setParameter(this.#binding.CParameter.compressionLevel, level);
    return cctx;
  }

  #context(size: number): CCtx {
    let c = SIZE_CLASSES.findIndex((limit) => size <= limit);
    if (c < 0) c = SIZE_CLASSES.length;
    let cctx = this.#cctx[c];
    if (!cctx) {
      cctx = this.#newContext(this.#level);
      if (c === SIZE_CLASSES.length && this.#probe) {
        cctx.setParameter(this.#binding.CParameter.chainLog, LARGE_CHAIN_LOG);
        cctx.setParameter(this.#binding.CParameter.hashLog, LARGE_HASH_LOG);
      }
      this.#cctx[c] = cctx;
    }
    return cctx;
  }
}

/**
 * A decompressor that writes into one scratch buffer it keeps (restore and check open every blob);
 * the result is a view into the scratch buffer, valid until the next call. The size recorded in
 * the pack header bounds the output, so damaged data cannot make it allocate without limit.
 */
export class ScratchDecompressor {
  readonly #dctx: DCtx;
  #scratch: Buffer = Buffer.alloc(0);

  constructor() {
    this.#dctx = new (binding().DCtx)();
  }

  decompress(data: Uint8Array, expectedSize: number): Buffer {
    this.#scratch = scratchFor(this.#scratch, expectedSize + 1);
    return decompressInto(this.#dctx, this.#scratch, data, expectedSize);
  }
}
