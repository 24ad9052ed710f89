/**
 * Shell completions and manual pages made from the CLI's own definition (commander's commands and
 * options), as `restic generate` makes them from cobra's: whatever the commands take, the
 * completions and pages say, with nothing to keep in step by hand.
 */
import type { Command, Option } from 'commander';

interface Cmd {
  /** The words that lead to it after `cairn` (`['key', 'add']`). */
  path: string[];
  command: Command;
}

/** Every command and subcommand, depth first, in the order help lists them. */
function commandsOf(program: Command): Cmd[] {
  const out: Cmd[] = [];
  const walk = (c: Command, path: string[]): void => {
    for (const sub of c.commands) {
      if ((sub as Command & { _hidden?: boolean })._hidden || sub.name() === 'help') continue;
      out.push({ path: [...path, sub.name()], command: sub });
      walk(sub, [...path, sub.name()]);
    }
  };
  walk(program, []);
  return out;
}

const visible = (c: Command): readonly Option[] => c.options.filter((o) => !o.hidden);
const flagsOf = (o: Option): string[] => [o.short, o.long].filter((f): f is string => !!f);
const takesValue = (o: Option): boolean => o.required || o.optional;
/** An option whose value names a file or folder: its placeholder says so (`<file>`, `<dir>`, `<path>`). */
const takesPath = (o: Option): boolean => /<(file|dir|path|folder)[^>]*>/i.test(o.flags);
const shellWords = (words: string[]): string => words.join(' ');

/** A bash function `_cairn` and its `complete` line (`complete -o default`: files where nothing else fits). */
export function bashCompletion(program: Command): string {
  const cmds = commandsOf(program);
  const global = visible(program);
  const lines: string[] = [];
  const cases = (fn: string, pick: (o: Option) => boolean): void => {
    // The options of `cmd` (its words, e.g. 'key add') that `pick` takes, with the program's own.
    lines.push(`${fn}() {`);
    lines.push(`  echo " ${shellWords(global.filter(pick).flatMap(flagsOf))} "`);
    lines.push('  case "$1" in');
    for (const c of cmds) {
      const own = visible(c.command).filter(pick).flatMap(flagsOf);
      if (own.length > 0) lines.push(`    '${c.path.join(' ')}') echo " ${shellWords(own)} " ;;`);
    }
    lines.push('  esac');
    lines.push('}');
  };
  lines.push('# bash completion for cairn (made by `cairn generate --bash-completion`)');
  cases('_cairn_valued', takesValue);
  cases('_cairn_paths', takesPath);
  lines.push('_cairn() {');
  lines.push('  local cur prev cmd="" i w');
  lines.push('  cur="${COMP_WORDS[COMP_CWORD]}"');
  lines.push('  prev="${COMP_WORDS[COMP_CWORD-1]}"');
  // The command so far: the words that are not options or their values, as long as they name a (sub)command.
  lines.push('  for ((i = 1; i < COMP_CWORD; i++)); do');
  lines.push('    w="${COMP_WORDS[i]}"');
  lines.push('    case "$w" in');
  lines.push('      --*=*) ;;');
  lines.push('      -*) [[ "$(_cairn_valued "$cmd")" == *" $w "* ]] && ((i++)) ;;');
  lines.push('      *)');
  lines.push('        case "${cmd:+$cmd }$w" in');
  lines.push(`          ${cmds.map((c) => `'${c.path.join(' ')}'`).join('|')}) cmd="\${cmd:+$cmd }$w" ;;`);
  lines.push('        esac ;;');
  lines.push('    esac');
  lines.push('  done');
  lines.push('  if [[ "$(_cairn_paths "$cmd")" == *" $prev "* ]]; then');
  lines.push('    COMPREPLY=($(compgen -f -- "$cur"))');
  lines.push('    return');
  lines.push('  fi');
  lines.push('  [[ "$(_cairn_valued "$cmd")" == *" $prev "* ]] && return');
  lines.push('  local words');
  lines.push('  case "$cmd" in');
  const branch = (key: string, c: Command, subs: string[]): void => {
    const words = [...subs, ...visible(c).flatMap(flagsOf), '--help', ...global.flatMap(flagsOf)];
    lines.push(`    '${key}') words="${shellWords(words)}" ;;`);
  };
  branch('', program, [...program.commands.filter((c) => c.name() !== 'help').map((c) => c.name()), 'help']);
  for (const c of cmds) branch(c.path.join(' '), c.command, c.command.commands.map((sub) => sub.name()));
  lines.push('  esac');
  // Options when asked for (a word that starts with -); otherwise the names of commands, or files.
  lines.push('  if [[ "$cur" == -* ]]; then');
  lines.push('    COMPREPLY=($(compgen -W "$words" -- "$cur"))');
  lines.push('  else');
  lines.push('    COMPREPLY=($(compgen -W "$(printf "%s\\n" $words | grep -v "^-")" -- "$cur"))');
  lines.push('  fi');
  lines.push('}');
  lines.push('complete -o default -F _cairn cairn');
  return `${lines.join('\n')}\n`;
}

/** The bash completion through zsh's bashcompinit: `source <(cairn generate --zsh-completion -)` after compinit. */
export function zshCompletion(program: Command): string {
  return `# zsh completion for cairn (made by \`cairn generate --zsh-completion\`): source it after compinit\nautoload -U +X bashcompinit && bashcompinit\n${bashCompletion(program)}`;
}

/** fish's `complete` lines: commands with their descriptions, each command's options. */
export function fishCompletion(program: Command): string {
  const q = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const opt = (o: Option, condition?: string): string => {
    const parts = ['complete -c cairn'];
    if (condition) parts.push(`-n ${q(condition)}`);
    if (o.short) parts.push(`-s ${o.short.slice(1)}`);
    if (o.long) parts.push(`-l ${o.long.slice(2)}`);
    if (takesValue(o)) parts.push(takesPath(o) ? '-r -F' : '-r');
    if (o.argChoices) parts.push(`-a ${q(o.argChoices.join(' '))}`);
    parts.push(`-d ${q(firstLine(o.description))}`);
    return parts.join(' ');
  };
  const lines = ['# fish completion for cairn (made by `cairn generate --fish-completion`)'];
  for (const o of visible(program)) lines.push(opt(o));
  for (const c of program.commands) {
    if (c.name() === 'help') continue;
    lines.push(`complete -c cairn -n '__fish_use_subcommand' -f -a ${c.name()} -d ${q(firstLine(c.description()))}`);
  }
  for (const { path, command } of commandsOf(program)) {
    const seen = `__fish_seen_subcommand_from ${path[path.length - 1]}`;
    const condition = path.length > 1 ? `__fish_seen_subcommand_from ${path[0]}; and ${seen}` : seen;
    const subs = command.commands.map((s) => s.name());
    for (const s of command.commands) {
      lines.push(`complete -c cairn -n ${q(`${condition}; and not __fish_seen_subcommand_from ${subs.join(' ')}`)} -f -a ${s.name()} -d ${q(firstLine(s.description()))}`);
    }
    for (const o of visible(command)) lines.push(opt(o, condition));
  }
  return `${lines.join('\n')}\n`;
}

const firstLine = (s: string): string => s.split('\n')[0];

/**
 * roff's escapes: backslashes, hyphens (so they copy as ASCII), characters past ASCII (as
 * `\[uXXXX]`, which groff reads whatever the input encoding) and a leading dot or quote.
 */
function roff(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/[\u0080-\u{10ffff}]/gu, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`)
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** One manual page per command (`cairn-key-add.1`) and `cairn.1`, in section 1, dated `date` (YYYY-MM-DD). */
export function manPages(program: Command, version: string, date: string): Map<string, string> {
  const pages = new Map<string, string>();
  const title = (path: string[]): string => ['cairn', ...path].join('-');
  const options = (heading: string, opts: readonly Option[], out: string[]): void => {
    if (opts.length === 0) return;
    out.push(`.SH ${heading}`);
    for (const o of opts) {
      out.push('.TP', `.B ${roff(o.flags)}`, roff(o.description + (o.argChoices ? ` (one of: ${o.argChoices.join(', ')})` : '')));
    }
  };
  const page = (path: string[], c: Command): string => {
    const name = title(path);
    // Left-adjusted and without hyphenation: option names and paths stay whole.
    const out = [`.TH ${roff(name.toUpperCase())} 1 "${date}" "cairn ${roff(version)}" "Cairn manual"`, '.ad l', '.nh', '.SH NAME', `${roff(name)} \\- ${roff(firstLine(c.description()))}`];
    out.push('.SH SYNOPSIS', `.B ${roff(['cairn', ...path].join(' '))}`, roff(c.usage()));
    out.push('.SH DESCRIPTION', roff(c.description()));
    if (c.commands.length > 0) {
      out.push('.SH COMMANDS');
      for (const s of c.commands) if (s.name() !== 'help') out.push('.TP', `.B ${roff(s.name())}`, roff(firstLine(s.description())));
    }
    options('OPTIONS', visible(c), out);
    if (path.length > 0) options('GLOBAL OPTIONS', visible(program), out);
    out.push('.SH SEE ALSO');
    const parent = path.length > 0 ? `${roff(title(path.slice(0, -1)))}(1)` : '';
    const children = c.commands.filter((s) => s.name() !== 'help').map((s) => `${roff(title([...path, s.name()]))}(1)`);
    out.push([parent, ...children].filter(Boolean).join(', ') || 'restic(1)');
    return `${out.join('\n')}\n`;
  };
  pages.set('cairn.1', page([], program));
  for (const { path, command } of commandsOf(program)) pages.set(`${title(path)}.1`, page(path, command));
  return pages;
}
