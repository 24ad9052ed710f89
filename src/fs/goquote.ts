import { CairnError } from '../errors.js';

/**
 * restic stores a node's name as Go's strconv.Quote writes it, without the outer quotes: `"` and
 * `\` escaped, control characters as \n, \t, \xNN, non-printable runes as \uXXXX or \UXXXXXXXX.
 * Names must go through these on the way in and out, or restic fails to read the tree.
 */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const SHORT: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };

/** Printable ASCII without `"` and `\`: most names, which need no escaping at all. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

export function goQuote(s: string): string {
  if (PLAIN.test(s)) return s;
  let out = '';
  for (const ch of s) {
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (PRINTABLE.test(ch)) out += ch;
    else if (SHORT[ch]) out += SHORT[ch];
    else {
      const cp = ch.codePointAt(0)!;
      if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
      else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd';
      else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, '0')}`;
      else out += `\\U${cp.toString(16).padStart(8, '0')}`;
    }
  }
  return out;
}

const UNESCAPE: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, "'": 39, '"': 34 };

/** The inverse of goQuote, for names restic wrote; bytes from \x escapes are decoded as UTF-8. */
export function goUnquote(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const pushText = (t: string): void => {
    for (const b of Buffer.from(t, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\') {
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      pushText(ch);
      i += ch.length - 1;
      continue;
    }
    const e = s[++i];
    const bad = (): never => {
      throw new CairnError('INTEGRITY', `invalid escaped name ${JSON.stringify(s)}`);
    };
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
  return Buffer.from(bytes).toString('utf8');
}
