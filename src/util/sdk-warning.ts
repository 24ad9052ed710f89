const SDK_NODE_WARNING = 'NodeVersionSupportWarning';
let warningFiltered = false;

/**
 * The AWS SDK warns on every process start under Node 20 that its future releases will need Node 22; that is
 * for the people who package Cairn, not for its users' stderr. Every other warning passes through unchanged.
 */
export function filterSdkNodeWarning(): void {
  if (warningFiltered) return;
  warningFiltered = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (text.startsWith(SDK_NODE_WARNING)) return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
