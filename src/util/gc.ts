/**
 * Young-generation collections paced by the bytes of short-lived native buffers a thread makes.
 *
 * Node's cipher returns a fresh buffer for every update(), and a blob worker encrypts or decrypts
 * every byte of a backup, restore or check that way while making few JavaScript objects. V8 frees
 * such buffers only when it collects, which it does by the objects a thread makes or once ~64 MiB
 * of native memory has piled up, so a worker went on holding tens of MiB of dead buffers (peak
 * RSS of the benchmark's initial backup ~270 MiB; with a young collection every 4 MiB of
 * encrypted bytes ~230 MiB, for no measurable time). A young collection of a worker's small heap
 * takes well under a millisecond.
 *
 * The collector is V8's `gc`, there when node runs with --expose-gc (the CLI's own options); without
 * it nothing is paced.
 */
const PACE_BYTES = 4 * 1024 * 1024;

type Collect = (opts: { type: 'minor' }) => void;
const collect = (globalThis as { gc?: Collect }).gc;
let since = 0;

/** Counts `bytes` of garbage made; collects the young generation once PACE_BYTES have been made. */
export function madeGarbage(bytes: number): void {
  if (!collect) return;
  since += bytes;
  if (since < PACE_BYTES) return;
  since = 0;
  collect({ type: 'minor' });
}
