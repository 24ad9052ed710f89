#!/usr/bin/env -S MALLOC_TRIM_THRESHOLD_=33554432 MALLOC_ARENA_MAX=2 GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node --max-semi-space-size=4 --heap-growing-percent=30 --single-threaded-gc --expose-gc
// The young generation is capped at 4 MiB per semi-space (V8's default grows to 16): a backup
// or restore makes many short-lived objects, and a larger nursery only holds more garbage
// (unchanged backup of the benchmark corpus: peak RSS -28 MB, CPU unchanged). 2 MiB took another
// ~20 MiB off the corpus's backup at the same speed, but doubled the main thread's young
// collections in a backup of 100,000 small files (+250-300 ms of pauses, ~+6%); V8 rounds 3 up
// to 4. The old
// generation may grow 30% past what the last full collection kept before the next one (V8
// lets a fast program's heap grow up to fourfold): a backup of 200,000 small files peaked at
// ~230 rather than ~315 MiB, for ~0.3 s more of full collections. --single-threaded-gc has each
// thread collect its own heap without V8's helper threads: the heaps are small (the workers'
// nurseries 1 MiB, collected every few MiB of cipher output), and waking helpers for each
// collection cost more than it saved, on virtual machines most (check --read-data of the
// benchmark corpus 2.43-2.67 -> 2.28-2.51 s, 0.2 CPU s less; a backup of 120,000 small files no
// slower). --expose-gc lets the threads
// that encrypt and decrypt collect the cipher's dead buffers as they go (see util/gc.ts). They
// must be command-line options: V8 sizes each heap when it creates it, and they apply to the
// worker threads too. MALLOC_TRIM_THRESHOLD_ lets glibc keep up to 32 MiB of freed memory at the
// top of each arena rather than hand it back past 128 KiB: the cipher's buffers, freed by the
// thousand at each young collection, were handed back and faulted in again, zeroed page by page
// (benchmark backup: ~120,000 -> ~75,000 page faults, ~6% less CPU, peak RSS unchanged).
// MALLOC_ARENA_MAX=2: glibc otherwise gives each thread that allocates an arena of its own (up to
// eight per core), each keeping its own freed memory; two arenas took 12-20 MiB off the
// benchmark backup's peak, ~10 off check and restore, at the same CPU (one arena cost check
// 6-13% more time). GLIBC_TUNABLES=glibc.malloc.hugetlb=1 has glibc ask for transparent huge
// pages (madvise) for the memory it maps, so that memory first touched faults in 2 MiB at a time:
// on virtual machines a 4 KiB page fault can cost ~13 µs (measured on the benchmark's), and the
// 32 MiB that scrypt fills to open a key took ~110 ms of faults alone (`cairn snapshots` 0.49-0.62
// -> 0.41-0.45 s, unchanged backup of the corpus -0.1 s and ~13,000 fewer faults). Like the V8
// options these must be set before the process starts; glibc reads them once.
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';
import { filterSdkNodeWarning } from '../util/sdk-warning.js';
import { noSpace } from '../errors.js';

async function main(): Promise<void> {
  filterSdkNodeWarning();
  // A reader that goes away (`cairn … | head`) must not kill a backup half way and leave its lock:
  // the work goes on, and what it would have printed is dropped. Output that cannot be written
  // for another reason (`cairn dump … > file` on a full disk) does not kill it either: the command
  // ends as it would (releasing its lock), then fails.
  let outputFailed: NodeJS.ErrnoException | undefined;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') outputFailed ??= err;
    });
  }
  const program = await buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 1;
      return;
    }
    throw err;
  }
  if (outputFailed && !process.exitCode) {
    process.exitCode = 1;
    process.stderr.write(`Fatal: writing the output failed: ${noSpace(outputFailed) ?? outputFailed.message}\n`);
  }
}

await main();
