import { isUtf8 as bufferIsUtf8 } from 'node:buffer';
import { CairnError } from '../errors.js';

/**
 * restic stores a node's name as Go's strconv.Quote writes it, without the outer quotes: `"` and
 * `\` escaped, control characters as \n, \t, \xNN, non-printable runes as \uXXXX or \UXXXXXXXX,
 * and bytes that are not UTF-8 as \xNN (Linux names are bytes, not text). Names must go through
 * these on the way in and out, or restic fails to read the tree.
 */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const SHORT: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };
/** Printable ASCII without `"` and `\`: most names, which need no escaping at all. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function quoteRune(ch: string): string {
  if (ch === '"' || ch === '\\') return `\\${ch}`;
  if (PRINTABLE.test(ch)) return ch;
  if (SHORT[ch]) return SHORT[ch];
  const cp = ch.codePointAt(0)!;
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\U${cp.toString(16).padStart(8, '0')}`;
}

export function goQuote(s: string): string {
  if (PLAIN.test(s)) return s;
  let out = '';
  for (const ch of s) out += quoteRune(ch);
  return out;
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function utf8Length(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n === 0 || i + n > b.length) return 0;
  // Node's decoder replaces overlong forms, surrogates and the like, so a round trip tells validity.
  const seq = Buffer.from(b.buffer, b.byteOffset + i, n);
  return Buffer.from(seq.toString('utf8'), 'utf8').equals(seq) ? n : 0;
}

/** goQuote for a name given as raw bytes: invalid UTF-8 bytes become \xNN, as Go writes them. */
export function goQuoteBytes(b: Uint8Array): string {
  let out = '';
  for (let i = 0; i < b.length; ) {
    const n = utf8Length(b, i);
    if (n === 0) {
      out += `\\x${b[i].toString(16).padStart(2, '0')}`;
      i++;
      continue;
    }
    out += quoteRune(Buffer.from(b.subarray(i, i + n)).toString('utf8'));
    i += n;
  }
  return out;
}

/** Whether bytes are valid UTF-8 (so a JavaScript string holds them without loss). */
export function isUtf8(b: Uint8Array): boolean {
  return bufferIsUtf8(b);
}

const UNESCAPE: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, "'": 39, '"': 34 };

/** The inverse of goQuote: the name's raw bytes. */
export function goUnquoteBytes(s: string): Buffer {
  if (!s.includes('\\')) return Buffer.from(s, 'utf8');
  const bytes: number[] = [];
  const pushText = (t: string): void => {
    for (const b of Buffer.from(t, 'utf8')) bytes.push(b);
  };
  const bad = (): never => {
    throw new CairnError('INTEGRITY', `invalid escaped name ${JSON.stringify(s)}`);
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\') {
      const ch = String.fromCodePoint(s.codePointAt(i)!);
      pushText(ch);
      i += ch.length - 1;
      continue;
    }
    const e = s[++i];
    if (e === undefined) bad();
    if (e in UNESCAPE) bytes.push(UNESCAPE[e]);
    else if (e === 'x') {
      const h = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) bad();
      bytes.push(parseInt(h, 16));
      i += 2;
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const h = s.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) bad();
      pushText(String.fromCodePoint(parseInt(h, 16)));
      i += n;
    } else if (e >= '0' && e <= '7') {
      const o = s.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(o)) bad();
      bytes.push(parseInt(o, 8));
      i += 2;
    } else bad();
  }
  return Buffer.from(bytes);
}

/** The inverse of goQuote, as text; bytes that are not UTF-8 turn into U+FFFD (see goUnquoteBytes). */
export function goUnquote(s: string): string {
  return goUnquoteBytes(s).toString('utf8');
}
