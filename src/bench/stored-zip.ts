/**
 * Writes a large zip fast, for benchmarks and tests of uploads: one stored (uncompressed) entry
 * whose content repeats one pseudo-random MiB. The CRC-32 is computed in a first pass over that
 * MiB in memory, so the file is written once, front to back, and hashed while it is written.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import zlib from 'node:zlib';

const BLOCK = 1024 * 1024;

function block(seed: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < BLOCK; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

/** The pieces of `size` bytes of content: whole blocks, then the rest. */
function* pieces(data: Buffer, size: number): Generator<Buffer> {
  for (let done = 0; done < size; done += BLOCK) yield size - done >= BLOCK ? data : data.subarray(0, size - done);
}

/**
 * Writes a zip holding one stored entry `entryName` of `size` bytes (under 4 GiB: no zip64) and
 * returns the file's size and SHA-256.
 */
export async function writeStoredZip(file: string, entryName: string, size: number, seed = 1): Promise<{ size: number; sha256: string }> {
  if (size >= 0xffffffff) throw new Error('writeStoredZip writes no zip64: keep the entry under 4 GiB');
  const data = block(seed);
  let crc = 0;
  for (const p of pieces(data, size)) crc = zlib.crc32(p, crc);
  const name = Buffer.from(entryName, 'utf8');
  // 2026-01-01 00:00 in MS-DOS form; the date does not matter to anyone reading these files.
  const dosTime = 0;
  const dosDate = ((2026 - 1980) << 9) | (1 << 5) | 1;

  // Local and central headers share these fields (version needed, UTF-8 flag, stored, time, date,
  // CRC, sizes, name length); they start at byte 4 of a local header and byte 6 of a central one.
  const entryFields = (b: Buffer, at: number) => {
    b.writeUInt16LE(10, at);
    b.writeUInt16LE(0x0800, at + 2);
    b.writeUInt16LE(0, at + 4);
    b.writeUInt16LE(dosTime, at + 6);
    b.writeUInt16LE(dosDate, at + 8);
    b.writeUInt32LE(crc >>> 0, at + 10);
    b.writeUInt32LE(size, at + 14);
    b.writeUInt32LE(size, at + 18);
    b.writeUInt16LE(name.length, at + 22);
  };
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  entryFields(local, 4);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(0x031e, 4);
  entryFields(central, 6);
  central.writeUInt32LE((0o100644 << 16) >>> 0, 38);

  const centralOffset = local.length + name.length + size;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + name.length, 12);
  end.writeUInt32LE(centralOffset, 16);

  const hash = createHash('sha256');
  const fh = await fs.open(file, 'w');
  try {
    const write = async (b: Buffer) => {
      hash.update(b);
      await fh.write(b);
    };
    await write(Buffer.concat([local, name]));
    for (const p of pieces(data, size)) await write(p);
    await write(Buffer.concat([central, name, end]));
  } finally {
    await fh.close();
  }
  return { size: centralOffset + central.length + name.length + end.length, sha256: hash.digest('hex') };
}
