/** Go's os.FileMode bits, which restic stores as a node's `mode`. */
export const GoMode = {
  Dir: 2 ** 31,
  Append: 2 ** 30,
  Exclusive: 2 ** 29,
  Temporary: 2 ** 28,
  Symlink: 2 ** 27,
  Device: 2 ** 26,
  NamedPipe: 2 ** 25,
  Socket: 2 ** 24,
  Setuid: 2 ** 23,
  Setgid: 2 ** 22,
  CharDevice: 2 ** 21,
  Sticky: 2 ** 20,
  Irregular: 2 ** 19,
} as const;

const S_IFMT = 0o170000;

export type UnixType = 'file' | 'dir' | 'symlink' | 'dev' | 'chardev' | 'fifo' | 'socket';

export function nodeTypeFromUnix(stMode: number): UnixType {
  switch (stMode & S_IFMT) {
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o060000:
      return 'dev';
    case 0o020000:
      return 'chardev';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      return 'file';
  }
}

/** st_mode to Go's FileMode (an unsigned 32-bit number). */
export function goModeFromUnix(stMode: number): number {
  let m = stMode & 0o777;
  if (stMode & 0o4000) m += GoMode.Setuid;
  if (stMode & 0o2000) m += GoMode.Setgid;
  if (stMode & 0o1000) m += GoMode.Sticky;
  switch (nodeTypeFromUnix(stMode)) {
    case 'dir':
      m += GoMode.Dir;
      break;
    case 'symlink':
      m += GoMode.Symlink;
      break;
    case 'dev':
      m += GoMode.Device;
      break;
    case 'chardev':
      m += GoMode.Device + GoMode.CharDevice;
      break;
    case 'fifo':
      m += GoMode.NamedPipe;
      break;
    case 'socket':
      m += GoMode.Socket;
      break;
    default:
      break;
  }
  return m;
}

/** Go's FileMode to the bits chmod takes: permissions plus setuid, setgid and sticky. */
export function unixPermFromGoMode(goMode: number): number {
  let m = goMode % 0o1000;
  const high = Math.floor(goMode / 2 ** 19);
  if (high & (GoMode.Setuid / 2 ** 19)) m |= 0o4000;
  if (high & (GoMode.Setgid / 2 ** 19)) m |= 0o2000;
  if (high & (GoMode.Sticky / 2 ** 19)) m |= 0o1000;
  return m;
}

const LETTERS = 'dalTLDpSugct?';

/** Go's FileMode.String(), e.g. "-rw-r--r--" or "dtrwxrwxrwx", which restic prints as `permissions`. */
export function goModeString(goMode: number): string {
  let s = '';
  for (let i = 0; i < LETTERS.length; i++) {
    if (Math.floor(goMode / 2 ** (31 - i)) % 2 === 1) s += LETTERS[i];
  }
  if (s === '') s = '-';
  const rwx = 'rwxrwxrwx';
  for (let i = 0; i < 9; i++) s += goMode & (1 << (8 - i)) ? rwx[i] : '-';
  return s;
}
