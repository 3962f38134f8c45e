/** One option of a CLI command, as its --help shows it. */
export interface CliOption {
  name: string;
  /** What the option takes, e.g. `N` or `FILE`; absent for a switch. */
  value?: string;
  description: string;
  /** What happens without it; absent when nothing does. */
  default?: string;
}

const MAX_HEAD_WIDTH = 24;

/** `--help` text: the synopsis, then one line per option with its description and default. */
export function formatHelp(usage: string, options: readonly CliOption[]): string {
  const heads = options.map((option) => `--${option.name}${option.value ? ` ${option.value}` : ''}`);
  const width = Math.min(MAX_HEAD_WIDTH, Math.max(...heads.map((head) => head.length))) + 2;
  const lines = options.map((option, index) => {
    const fallback = option.default === undefined ? '' : ` (default: ${option.default})`;
    // A long value list gets a line of its own rather than pushing every description far to the right.
    const head = heads[index].length + 2 > width ? `${heads[index]}\n  ${''.padEnd(width)}` : heads[index].padEnd(width);
    return `  ${head}${option.description}${fallback}`;
  });
  return `${usage}\n\nOptions:\n${lines.join('\n')}\n  ${'--help'.padEnd(width)}Show this help\n`;
}

export const wantsHelp = (args: readonly string[]) => args.includes('--help') || args.includes('-h');

/**
 * Node's parseArgs reads `--seed -1` as an option followed by another option and calls it ambiguous; a value that looks
 * like a negative number is joined to its option (`--seed=-1`) so that the option's own check can say what is allowed.
 */
export function joinNegativeValues(args: readonly string[], valueOptions: readonly string[]): string[] {
  const joined: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const name = /^--([a-z][a-z-]*)$/.exec(args[index])?.[1];
    const next = args[index + 1];
    if (name && valueOptions.includes(name) && next !== undefined && /^-\d/.test(next)) {
      joined.push(`--${name}=${next}`);
      index += 1;
    } else joined.push(args[index]);
  }
  return joined;
}
