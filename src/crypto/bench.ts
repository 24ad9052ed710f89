/**
 * Micro-benchmark of the crypto layer. Build, then:
 *   node -e "import('./dist/crypto/bench.js').then(m => m.benchCrypto()).then(console.log)"
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { Key } from './crypto.js';
import { poly1305Implementations } from './poly1305.js';

const MiB = 1 << 20;

/**
 * Throughput in MiB/s over 64 MiB of random data for Poly1305 alone (each implementation), raw AES-256-CTR (node),
 * and full sealing / opening with {@link Key}. Each figure is the best of `rounds` runs after
 * a warm-up, so JIT tier-up does not count against the first one.
 */
export async function benchCrypto(sizeMiB = 64, rounds = 3): Promise<Record<string, number>> {
  const data = randomBytes(sizeMiB * MiB);
  const key = Key.random();
  const polyKey = randomBytes(32);
  const aesKey = randomBytes(32);
  const iv = randomBytes(16);
  const sealed = key.encrypt(data);

  const tag = new Uint8Array(16);
  const cases: Record<string, () => void> = {
    ...Object.fromEntries(Object.entries(poly1305Implementations).map(([name, impl]) => [`poly1305 (${name})`, () => impl(polyKey, data, tag, 0)])),
    'aes-256-ctr': () => {
      const c = createCipheriv('aes-256-ctr', aesKey, iv);
      c.update(data);
      c.final();
    },
    'Key.encrypt': () => key.encrypt(data),
    'Key.decrypt': () => key.decrypt(sealed),
  };

  const result: Record<string, number> = {};
  for (const [name, fn] of Object.entries(cases)) {
    fn();
    let best = Infinity;
    for (let i = 0; i < rounds; i++) {
      const start = process.hrtime.bigint();
      fn();
      best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
      // Lets pending I/O and timers run between rounds.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    result[name] = Math.round(sizeMiB / best);
  }
  return result;
}
