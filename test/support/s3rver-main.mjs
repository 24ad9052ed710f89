// Runs an s3rver on a free loopback port in its own process (started with --openssl-legacy-provider,
// which s3rver needs for paginated listings), and prints {"port":N} on its first line of stdout.
// argv: DIRECTORY BUCKET...
import process from 'node:process';
import S3rver from 's3rver';

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});
const addr = await server.run();
process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
