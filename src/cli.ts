import { isImagineError } from './core/errors.js';
import { generateCommand } from './cli/generate.js';
import { quantizeCommand } from './cli/quantize.js';
import { registerCommand, slackManifestCommand } from './cli/register.js';

/** `npm run cli -- <command> …`: one entry point, one module per command. */
const commands: Record<string, (args: string[]) => Promise<number>> = {
  generate: generateCommand,
  quantize: quantizeCommand,
  register: registerCommand,
  'slack-manifest': slackManifestCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    process.stderr.write(`Usage: npm run cli -- <command> …\nCommands: ${Object.keys(commands).join(', ')}\n`);
    return name ? 2 : 0;
  }
  return command(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(isImagineError(error) ? `error: ${error.userMessage}\n` : `unexpected error: ${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  },
);
