/** Zip archives and dump-archive names for receiver and db-dump tests. */
import { randomUUID } from 'node:crypto';
import yazl from 'yazl';

/** A zip holding one entry, built in memory. */
export function makeZip(entryName: string, content: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), entryName);
    zip.end();
    const parts: Buffer[] = [];
    zip.outputStream.on('data', (d: Buffer) => parts.push(d));
    zip.outputStream.on('end', () => resolve(Buffer.concat(parts)));
    zip.outputStream.on('error', reject);
  });
}

/** A file name as `cairn db-dump` writes it, e.g. mysql-2026-11-24-08-00-00-shop-<uuid>.sql.zip. */
export function archiveName(database: string, opts: { engine?: 'mysql' | 'postgres'; at?: Date; uuid?: string } = {}): string {
  const at = (opts.at ?? new Date()).toISOString().slice(0, 19).replace('T', '-').replace(/:/g, '-');
  return `${opts.engine ?? 'mysql'}-${at}-${database}-${opts.uuid ?? randomUUID()}.sql.zip`;
}
