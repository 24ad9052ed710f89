import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { PROGRAM_VERSION } from '../../repository/snapshot.js';
import type { Run } from '../program.js';

interface GenerateFlags {
  bashCompletion?: string;
  zshCompletion?: string;
  fishCompletion?: string;
  man?: string;
}

export function registerGenerate(program: Command, run: Run): void {
  program
    .command('generate')
    .description('write shell completions and manual pages, as restic generate does (FILE "-" is standard output)')
    .option('--bash-completion <file>', 'write the bash completion to this file')
    .option('--zsh-completion <file>', 'write the zsh completion to this file (source it after compinit)')
    .option('--fish-completion <file>', 'write the fish completion to this file')
    .option('--man <dir>', 'write a manual page for each command into this folder')
    .action((o: GenerateFlags) =>
      run(async (ctx) => {
        if (!o.bashCompletion && !o.zshCompletion && !o.fishCompletion && !o.man) {
          throw new CairnError('BAD_INPUT', 'nothing to generate: give --bash-completion, --zsh-completion, --fish-completion (a file, or - for standard output) or --man DIR');
        }
        const { bashCompletion, zshCompletion, fishCompletion, manPages } = await import('../generate.js');
        const { buildProgram } = await import('../program.js');
        // The whole CLI: this run loaded only this command's module.
        const all = await buildProgram(['node', 'cairn']);
        const put = async (file: string, text: string): Promise<void> => {
          if (file === '-') ctx.write(text);
          else await writeOut(file, text);
        };
        if (o.bashCompletion) await put(o.bashCompletion, bashCompletion(all));
        if (o.zshCompletion) await put(o.zshCompletion, zshCompletion(all));
        if (o.fishCompletion) await put(o.fishCompletion, fishCompletion(all));
        if (o.man) {
          const date = process.env.SOURCE_DATE_EPOCH ? new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000) : new Date();
          const pages = manPages(all, PROGRAM_VERSION.replace('cairn ', ''), date.toISOString().slice(0, 10));
          try {
            await fs.mkdir(o.man, { recursive: true });
          } catch (err) {
            throw new CairnError('BAD_INPUT', `cannot create ${o.man}: ${(err as Error).message}`, { cause: err });
          }
          for (const [name, text] of pages) await writeOut(path.join(o.man, name), text);
          ctx.print(`wrote ${pages.size} manual pages to ${o.man}`);
        }
      }),
    );
}

async function writeOut(file: string, text: string): Promise<void> {
  try {
    await fs.writeFile(file, text);
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}
