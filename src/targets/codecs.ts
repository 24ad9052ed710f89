import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { CompressStream } from 'zstd-napi';
import type { Codec } from './spec.js';

export type StreamCodec = Exclude<Codec, 'zip'>;

/** File name extensions: `.zz` is the usual one for a bare zlib (RFC 1950) stream. */
export const EXTENSIONS: Record<Codec, string> = { gzip: 'gz', zlib: 'zz', brotli: 'br', zstd: 'zst', zip: 'zip' };

/** zstd at level 3, as the repository uses; the others at their libraries' defaults except brotli, whose default (11) is very slow. */
export function compressor(codec: StreamCodec): Transform {
  switch (codec) {
    case 'gzip':
      return zlib.createGzip();
    case 'zlib':
      return zlib.createDeflate();
    case 'brotli':
      return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 6 } });
    case 'zstd':
      return new CompressStream({ compressionLevel: 3 });
  }
}
