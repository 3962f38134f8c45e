import { isImagineError } from './core/errors.js';
import { generateCommand } from './cli/generate.js';
import { quantizeCommand } from './cli/quantize.js';
import { registerCommand, slackManifestCommand } from './cli/register.js';

/** `npm run cli -- <command> …`: one entry point, one module per command. */
const commands: Record<string, { run: (args: string[]) => Promise<number>; summary: string }> = {
  generate: { run: generateCommand, summary: 'Make, vary, edit or upscale images from the command line, without the chat' },
  quantize: { run: quantizeCommand, summary: 'Write an int8 copy of a model folder (docs/QUANTIZATION.md)' },
  register: { run: registerCommand, summary: "Register the chat's slash commands with Discord" },
  'slack-manifest': { run: slackManifestCommand, summary: 'Print the Slack app manifest' },
};

const OVERVIEW = `Usage: npm run cli -- <command> [options]   (npm run cli -- <command> --help for its options)\n\nCommands:\n${Object.entries(commands)
  .map(([name, command]) => `  ${name.padEnd(16)}${command.summary}`)
  .join('\n')}\n`;

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(OVERVIEW);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`Unknown command '${name}'.\n${OVERVIEW}`);
    return 2;
  }
  return command.run(args);
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
