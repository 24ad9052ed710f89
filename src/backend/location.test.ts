import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from './local.js';
import { openBackend, parseBackendOptions, type BackendOptions } from './location.js';
import { parseRestLocation } from './rest.js';
import { RetryBackend } from './retry.js';
import { parseS3Location } from './s3.js';

/** The error `fn` throws; fails when it returns. */
function thrown(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('accepted');
}

async function opened(location: string, options?: BackendOptions): Promise<string> {
  const b = openBackend(location, options);
  await b.close();
  return b.location;
}

describe('repository locations', () => {
  it('opens folders and local:, as restic parses them', () => {
    expect(openBackend('/srv/repo').location).toBe('/srv/repo');
    expect(openBackend('/srv/repo:2024').location).toBe('/srv/repo:2024');
    expect(openBackend('local:/srv/repo').location).toBe('/srv/repo');
    expect(openBackend('local:rel:ative').location).toBe(path.resolve('rel:ative'));
    expect(openBackend('./a:b').location).toBe(path.resolve('a:b'));
    expect(openBackend('repo').location).toBe(path.resolve('repo'));
    expect(openBackend('local:/srv/repo')).toBeInstanceOf(LocalBackend);
  });

  it('opens s3: locations as restic writes them, behind the retry wrapper', async () => {
    const b = openBackend('s3:http://127.0.0.1:9000/bucket/prefix/sub');
    expect(b).toBeInstanceOf(RetryBackend);
    await b.close();
    expect(b.location).toBe('s3:http://127.0.0.1:9000/bucket/prefix/sub');
    expect(await opened('s3:s3.amazonaws.com/bucket/prefix')).toBe('s3:s3.amazonaws.com/bucket/prefix');
    expect(await opened('s3:https://minio.example.com/bucket/')).toBe('s3:https://minio.example.com/bucket');

    expect(parseS3Location('http://127.0.0.1:9000/bucket/a/b/')).toEqual({
      endpoint: 'http://127.0.0.1:9000',
      aws: false,
      hostRegion: undefined,
      bucket: 'bucket',
      prefix: 'a/b/',
      display: 's3:http://127.0.0.1:9000/bucket/a/b',
    });
    expect(parseS3Location('minio.example.com:9000/bucket')).toMatchObject({ endpoint: 'https://minio.example.com:9000', bucket: 'bucket', prefix: '', display: 's3:minio.example.com:9000/bucket' });
    expect(parseS3Location('s3.eu-west-1.amazonaws.com/bucket/repo')).toMatchObject({ endpoint: undefined, aws: true, hostRegion: 'eu-west-1', bucket: 'bucket', prefix: 'repo/' });
    expect(parseS3Location('s3.amazonaws.com/bucket')).toMatchObject({ endpoint: undefined, aws: true, hostRegion: undefined });
  });

  it('opens rest: locations, masking the password wherever the location is shown', async () => {
    expect(openBackend('rest:http://127.0.0.1:8000/')).toBeInstanceOf(RetryBackend);
    expect(await opened('rest:http://127.0.0.1:8000')).toBe('rest:http://127.0.0.1:8000/');
    expect(await opened('rest:https://user:secret@host:8000/path')).toBe('rest:https://user:***@host:8000/path/');

    const loc = parseRestLocation('http://al%20ice:p%40ss%3Aw0rd@host:8000/repo/');
    expect(loc.url.href).toBe('http://host:8000/repo/');
    expect(loc.display).toBe('rest:http://al%20ice:***@host:8000/repo/');
    expect(loc.authorization).toBe(`Basic ${Buffer.from('al ice:p@ss:w0rd').toString('base64')}`);
    const fromEnv = parseRestLocation('http://host:8000/', { CAIRN_REST_USERNAME: 'bob', RESTIC_REST_PASSWORD: 'hunter2' });
    expect([fromEnv.display, fromEnv.authorization]).toEqual(['rest:http://host:8000/', `Basic ${Buffer.from('bob:hunter2').toString('base64')}`]);
    expect(parseRestLocation('http://host:8000/', {}).authorization).toBeUndefined();
  });

  it('refuses other backends and malformed remote locations with BAD_INPUT, without echoing credentials', () => {
    const refused = (location: string) => thrown(() => openBackend(location));
    expect(refused('s3:https://AKIA:secret@s3.example.com/bucket')).toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/^S3 credentials do not belong in the repository location/) });
    expect(refused('s3:http://127.0.0.1:9000/')).toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/names no bucket/) });
    expect(refused('s3:http://127.0.0.1:9000/b?x=1')).toMatchObject({ code: 'BAD_INPUT' });
    expect(refused('rest:ftp://host/')).toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/http or https only/) });
    expect(refused('rest:host:8000')).toMatchObject({ code: 'BAD_INPUT' });
    expect(refused('sftp:user@host:/srv/repo').message).toMatch(/sftp: backend is not supported.*local:\/path/);
    expect(refused('ftp://host/x').message).toMatch(/unknown repository type "ftp:".*local: prefix/);
    expect(refused('C:\\backup').code).toBe('BAD_INPUT');
    expect(refused('local:').code).toBe('BAD_INPUT');
    expect(refused('').message).toMatch(/empty repository location/);
    for (const l of ['s3:https://AKIA:secret@s3.example.com/bucket', 'rest:ftp://user:secret@host:8000/', 'user:secret@host/x']) expect(refused(l).message).not.toMatch(/secret/);
  });

  it('takes -o options of the opened backend only, and refuses names it does not know', async () => {
    expect(parseBackendOptions(['s3.region=eu-west-1', 's3.storage-class=STANDARD_IA', 'rest.x=a=b'])).toEqual({ 's3.region': 'eu-west-1', 's3.storage-class': 'STANDARD_IA', 'rest.x': 'a=b' });
    for (const bad of ['region=eu-west-1', 's3.region', 's3.region=', 'S3.Region=x']) expect(thrown(() => parseBackendOptions([bad])).code, bad).toBe('BAD_INPUT');

    const s3 = 's3:http://127.0.0.1:9000/bucket';
    expect(await opened(s3, { 's3.region': 'eu-west-1', 's3.bucket-lookup': 'dns', 's3.sse': 'aws:kms', 's3.sse-kms-key-id': 'k', 'rest.other': 'ignored' })).toBe('s3:http://127.0.0.1:9000/bucket');
    expect(await opened('/srv/repo', { 's3.region': 'eu-west-1' })).toBe('/srv/repo');
    const refused = (location: string, options: BackendOptions) => thrown(() => openBackend(location, options));
    expect(refused(s3, { 's3.regoin': 'x' }).message).toBe('unknown option s3.regoin; the s3 backend knows s3.bucket-lookup, s3.storage-class, s3.sse, s3.sse-kms-key-id, s3.region');
    expect(refused(s3, { 's3.bucket-lookup': 'virtual' }).message).toMatch(/^invalid s3.bucket-lookup "virtual": use auto, dns or path/);
    expect(refused(s3, { 's3.sse': 'des' }).message).toMatch(/^invalid s3.sse "des": use AES256 or aws:kms/);
    expect(refused(s3, { 's3.sse-kms-key-id': 'k' }).message).toBe('s3.sse-kms-key-id needs s3.sse=aws:kms');
    expect(refused('rest:http://host/', { 'rest.x': '1' }).message).toBe('unknown option rest.x: the rest backend takes no options');
    expect(refused('local:/srv', { 'local.layout': 'default' }).message).toBe('unknown option local.layout: the local backend takes no options');
  });
});
