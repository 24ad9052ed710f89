import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress, formatBytes, formatDuration, type ProgressState } from './progress.js';

class Capture extends Writable {
  chunks: string[] = [];
  columns?: number;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk.toString('utf8'));
    cb();
  }

  get text(): string {
    return this.chunks.join('');
  }
}

function clock(startMs = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = startMs;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** The text of one drawn status line, without the leading \r and the trailing clear-to-end. */
function drawn(chunk: string): string {
  expect(chunk.startsWith('\r') && chunk.endsWith('\x1b[K')).toBe(true);
  return chunk.slice(1, -3);
}

const state = (over: Partial<ProgressState> = {}): ProgressState => ({ filesDone: 0, bytesDone: 0, errors: 0, ...over });

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    // restic switches unit only above the unit's size.
    [1024, '1024 B'],
    [1025, '1.001 KiB'],
    [1536, '1.500 KiB'],
    [5 * 1024 * 1024 + 1, '5.000 MiB'],
    [Math.round(1.234 * 2 ** 30), '1.234 GiB'],
    [2 ** 30, '1024.000 MiB'],
    // An exact tie rounds to even, like Go's %.3f (JavaScript's toFixed would say 1.063).
    [1.0625 * 2 ** 30, '1.062 GiB'],
    [1.1875 * 2 ** 30, '1.188 GiB'],
    [3 * 2 ** 40, '3.000 TiB'],
    [5 * 2 ** 50, '5120.000 TiB'],
  ])('%d → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0:00'],
    [5, '0:05'],
    [59.9, '0:59'],
    [123, '2:03'],
    [3599, '59:59'],
    [3600, '1:00:00'],
    [3723, '1:02:03'],
    [100 * 3600 + 61, '100:01:01'],
    [-3, '0:00'],
  ])('%d s → %s', (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });
});

describe('tty progress', () => {
  it('draws one line with \\r and clear-to-end, at most ten times a second', () => {
    const err = new Capture();
    const c = clock();
    const p = createProgress('tty', { err, now: c.now });
    p.update(state({ filesDone: 1 }));
    c.advance(50);
    p.update(state({ filesDone: 2 }));
    c.advance(49);
    p.update(state({ filesDone: 3 }));
    c.advance(1);
    p.update(state({ filesDone: 4 }));
    expect(err.chunks).toHaveLength(2);
    for (const chunk of err.chunks) {
      expect(chunk.startsWith('\r')).toBe(true);
      expect(chunk.endsWith('\x1b[K')).toBe(true);
      expect(chunk).not.toContain('\n');
    }
    expect(err.chunks[0]).toContain('1 files');
    expect(err.chunks[1]).toContain('4 files');
    // 100 updates over one second draw at most 10 lines.
    for (let i = 0; i < 100; i++) {
      c.advance(10);
      p.update(state({ filesDone: 5 + i }));
    }
    expect(err.chunks.length).toBeLessThanOrEqual(2 + 10);
  });

  it('shows files, bytes, rate, errors and elapsed time without totals', () => {
    const err = new Capture();
    const c = clock();
    const p = createProgress('tty', { err, now: c.now });
    c.advance(65_000);
    p.update(state({ filesDone: 12, bytesDone: 130 * 1024 * 1024, errors: 1 }));
    const line = drawn(err.text);
    expect(line).toBe('[1:05] 12 files, 130.000 MiB, 2.00 MiB/s, 1 errors');
  });

  it('shows percentage and ETA when totals are known', () => {
    const err = new Capture();
    const c = clock();
    const p = createProgress('tty', { err, now: c.now });
    c.advance(30_000);
    // A quarter of the bytes in 30 s leaves 90 s.
    p.update(state({ filesDone: 3, filesTotal: 10, bytesDone: 256 * 1024 * 1024, bytesTotal: 1024 * 1024 * 1024 }));
    const line = drawn(err.text);
    expect(line).toBe('[0:30] 25.00% 3 / 10 files, 256.000 MiB / 1024.000 MiB, 8.53 MiB/s, 0 errors ETA 1:30');
  });

  it('estimates by files when only a file total is known, and shows the phase', () => {
    const err = new Capture();
    const c = clock();
    const p = createProgress('tty', { err, now: c.now });
    c.advance(10_000);
    p.update(state({ filesDone: 20, filesTotal: 100, phase: 'packs' }));
    const line = drawn(err.text);
    expect(line).toBe('[0:10] 20.00% packs: 20 / 100 files, 0 errors ETA 0:40');
  });

  it('keeps the line within the terminal width, shortening the current path from its start', () => {
    const err = new Capture();
    err.columns = 60;
    const c = clock();
    const p = createProgress('tty', { err, now: c.now });
    const current = `/home/user/${'deep/'.repeat(20)}file.txt`;
    p.update(state({ filesDone: 1, current }));
    const line = drawn(err.text);
    expect(line.length).toBe(59);
    expect(line).toMatch(/^\[0:00\] 1 files, 0 errors ….*\/file\.txt$/);
  });

  it('done() clears the status line and leaves no half line', () => {
    const err = new Capture();
    const c = clock();
    const p = createProgress('tty', { err, now: c.now });
    p.update(state({ filesDone: 1, current: '/a/b' }));
    p.done(state({ filesDone: 2 }));
    expect(err.chunks.at(-1)).toBe('\r\x1b[K');
  });

  it('done() writes nothing when nothing was drawn', () => {
    const err = new Capture();
    createProgress('tty', { err, now: clock().now }).done(state());
    expect(err.text).toBe('');
  });
});

describe('json progress', () => {
  const lines = (out: Capture): Record<string, unknown>[] =>
    out.text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('writes restic-style status lines, at most one per second plus one at done', () => {
    const out = new Capture();
    const c = clock();
    const p = createProgress('json', { out, now: c.now });
    for (let i = 1; i <= 25; i++) {
      c.advance(100);
      p.update(state({ filesDone: i, bytesDone: i * 1000 }));
    }
    c.advance(10);
    p.done(state({ filesDone: 25, bytesDone: 25_000 }));
    const msgs = lines(out);
    // Updates at 0.1 s, 1.1 s and 2.1 s, then done.
    expect(msgs.map((m) => m.files_done)).toEqual([1, 11, 21, 25]);
    for (const m of msgs) expect(m.message_type).toBe('status');
    expect(out.text.endsWith('\n')).toBe(true);
  });

  it('has restic field names and omits zero values as restic does', () => {
    const out = new Capture();
    const c = clock();
    const p = createProgress('json', { out, now: c.now });
    c.advance(20_500);
    p.update(state({ filesDone: 4, filesTotal: 8, bytesDone: 1000, bytesTotal: 4000, errors: 2, current: '/src/a.txt' }));
    p.done(state({ filesDone: 0, bytesDone: 0, errors: 0 }));
    const [status, final] = lines(out);
    expect(status).toEqual({
      message_type: 'status',
      seconds_elapsed: 20,
      seconds_remaining: 62,
      percent_done: 0.25,
      total_files: 8,
      files_done: 4,
      total_bytes: 4000,
      bytes_done: 1000,
      error_count: 2,
      current_files: ['/src/a.txt'],
    });
    expect(final).toEqual({ message_type: 'status', seconds_elapsed: 20, percent_done: 0 });
  });

  it('caps percent_done at 1', () => {
    const out = new Capture();
    const p = createProgress('json', { out, now: clock().now });
    p.done(state({ bytesDone: 5000, bytesTotal: 4000 }));
    expect(lines(out)[0].percent_done).toBe(1);
  });
});

describe('none', () => {
  it('writes nothing', () => {
    const out = new Capture();
    const err = new Capture();
    const p = createProgress('none', { out, err });
    p.update(state({ filesDone: 1 }));
    p.done(state({ filesDone: 1 }));
    expect(out.text + err.text).toBe('');
  });
});
