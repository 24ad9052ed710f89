// Runs an s3rver on a free loopback port in its own process (started with --openssl-legacy-provider,
// which s3rver needs for paginated listings), and prints {"port":N} on its first line of stdout.
// argv: DIRECTORY BUCKET...
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});

// s3rver writes an object in place: a listing or HEAD during an upload shows part of it, and an
// upload cut short leaves the part behind. S3 never shows a partial object, and Cairn's S3 backend
// relies on that, so objects are written to a temporary file here and renamed into place.
server.store.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.mkdir(path.dirname(objectPath), { recursive: true });
  const tmp = `${objectPath}.${randomBytes(8).toString('hex')}.uploading`;
  const md5 = createHash('md5');
  let size = 0;
  const counter = new Transform({
    transform(chunk, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
  try {
    await pipeline(content, counter, createWriteStream(tmp));
    await fs.rename(tmp, objectPath);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const digest = md5.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
};

// Its metadata file too is written in place: a listing that reads it half written answers 500
// (JSON that does not parse; seen about once in twelve runs of the conformance test that lists
// while saving). It is written to a temporary file and renamed too, with what s3rver keeps of the
// metadata (its own allowed headers and x-amz-meta-*).
const { ALLOWED_METADATA } = createRequire(import.meta.url)('s3rver/lib/models/object.js');
const writeAtomically = async (file, data) => {
  const tmp = `${file}.${randomBytes(8).toString('hex')}.writing`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
};
server.store.putMetadata = async function putMetadata(bucket, key, metadata, md5) {
  const kept = Object.fromEntries(Object.entries(metadata ?? {}).filter(([k]) => ALLOWED_METADATA.includes(k) || k.startsWith('x-amz-meta-')));
  if (md5) await writeAtomically(this.getResourcePath(bucket, key, 'object.md5'), md5);
  await writeAtomically(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(kept, null, 2));
};

const addr = await server.run();
process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
