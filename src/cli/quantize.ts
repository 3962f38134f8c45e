import { parseArgs } from 'node:util';
import { z } from 'zod';
import { invalidInput, isImagineError } from '../core/errors.js';
import { DEFAULT_CALIBRATION_IMAGES, quantizeFolder, type QuantizeReport } from '../engine/quantize/quantize-folder.js';
import { DEFAULT_MODEL_DIR } from './generate.js';
import { formatHelp, wantsHelp } from './help.js';

const USAGE = `Usage: npm run cli -- quantize --model DIR --out DIR [--calibration-images N] [--calibration-steps N] [--reduce-range] [--threads N] [--json]
  Writes an int8 copy of the folder (UNet and text encoder) to --out, a folder that must not exist yet.
  --calibration-images  images drawn through the pipeline to measure the UNet's activation ranges (default ${DEFAULT_CALIBRATION_IMAGES})
  --calibration-steps   sampling steps per calibration image (default: the folder's default steps); fewer is quicker for a large model
  --reduce-range        7-bit weights, for CPUs without VNNI (before Intel Cascade Lake / AMD Zen 4) if the int8 copy draws worse`;

export const QUANTIZE_HELP = formatHelp('Usage: npm run cli -- quantize --model DIR --out DIR [options]\nWrites an int8 copy of the folder (UNet and text encoder) to --out, a folder that must not exist yet.', [
  { name: 'model', value: 'DIR', description: 'The model folder to copy', default: DEFAULT_MODEL_DIR },
  { name: 'out', value: 'DIR', description: 'Where to write the int8 copy (required; must not exist)' },
  { name: 'calibration-images', value: 'N', description: "Images drawn through the pipeline to measure the UNet's activation ranges", default: String(DEFAULT_CALIBRATION_IMAGES) },
  { name: 'calibration-steps', value: 'N', description: 'Sampling steps per calibration image; fewer is quicker for a large model', default: "the folder's default steps" },
  { name: 'reduce-range', description: '7-bit weights, for CPUs without VNNI (before Intel Cascade Lake / AMD Zen 4)', default: 'off' },
  { name: 'threads', value: 'N', description: 'CPU threads for ONNX Runtime', default: "onnxruntime's" },
  { name: 'json', description: 'Print one JSON report', default: 'off' },
]);

const wholeNumber = (flag: string) =>
  z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined) return undefined;
      const parsed = Number(value);
      if (value.trim() === '' || !Number.isInteger(parsed) || parsed < 1) {
        context.addIssue({ code: 'custom', message: `${flag} expects a whole number of at least 1, got '${value}'` });
        return z.NEVER;
      }
      return parsed;
    });

const QuantizeFlags = z.object({
  model: z.string().default(DEFAULT_MODEL_DIR),
  out: z.string({ message: '--out is required: the folder to write the int8 copy to' }),
  'calibration-images': wholeNumber('--calibration-images'),
  'calibration-steps': wholeNumber('--calibration-steps'),
  'reduce-range': z.boolean().default(false),
  threads: wholeNumber('--threads'),
  json: z.boolean().default(false),
});
type QuantizeFlags = z.infer<typeof QuantizeFlags>;

export async function quantizeCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(QUANTIZE_HELP);
    return 0;
  }
  let json = args.includes('--json');
  try {
    const flags = parseFlags(args);
    json = flags.json;
    const report = await quantizeFolder(flags.model, flags.out, {
      calibrationImages: flags['calibration-images'],
      calibrationSteps: flags['calibration-steps'],
      reduceRange: flags['reduce-range'],
      intraOpNumThreads: flags.threads,
    });
    process.stdout.write(json ? `${JSON.stringify(report)}\n` : describe(report));
    return 0;
  } catch (error) {
    if (!isImagineError(error)) throw error;
    if (json) process.stdout.write(`${JSON.stringify({ error: { kind: error.kind, message: error.userMessage } })}\n`);
    else process.stderr.write(`error: ${error.userMessage}\n`);
    return error.kind === 'invalid_input' ? 2 : 1;
  }
}

function parseFlags(args: string[]): QuantizeFlags {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      options: {
        model: { type: 'string' },
        out: { type: 'string' },
        'calibration-images': { type: 'string' },
        'calibration-steps': { type: 'string' },
        'reduce-range': { type: 'boolean' },
        threads: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw invalidInput(`${(error as Error).message}\n${USAGE}`);
  }
  const result = QuantizeFlags.safeParse(parsed.values);
  if (!result.success) throw invalidInput(`${result.error.issues.map((issue) => issue.message).join('; ')}\n${USAGE}`);
  return result.data;
}

function describe(report: QuantizeReport): string {
  const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  const lines = report.components.map(
    (c) => `${c.file}: ${c.matmuls} MatMul/Gemm → DynamicQuantizeMatMul, ${c.convs} Conv → QLinearConv; ${mb(c.bytesBefore)} → ${mb(c.bytesAfter)}`,
  );
  if (report.calibration) {
    lines.push(`calibrated on ${report.calibration.images} images (${report.calibration.steps} steps, ${report.calibration.unetCalls} UNet calls) in ${report.calibration.seconds.toFixed(1)} s`);
  }
  lines.push(`wrote ${report.out}: ${mb(report.folderBytes.before)} → ${mb(report.folderBytes.after)} in ${report.seconds.toFixed(1)} s`);
  return `${lines.join('\n')}\n`;
}
