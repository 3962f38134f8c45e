import { existsSync } from 'node:fs';
import { cp, readFile, rename, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { EngineError, invalidInput, modelFailure } from '../errors.js';
import { describeModelFolder, type ComponentName } from '../model-description.js';
import { loadModelFolder } from '../model-folder.js';
import { calibrateUnet, type CalibrationRun } from './calibrate.js';
import { calibrationModel, calibrationTensors, externalDataFiles, planInt8, rewriteInt8, type ActivationRange, type Int8Plan } from './int8-graph.js';
import { OnnxFormatError, readOnnxModel } from './onnx-file.js';

/**
 * `quantize`: an int8 copy of a model folder — its UNet and text encoder(s) rewritten (./int8-graph.ts), every other
 * file copied — that the engine loads like any folder. Every file is checked before anything is written; the copy is
 * built in a temporary folder beside --out, opened with the engine, and only then renamed to --out, so a refusal or a
 * failure leaves nothing behind.
 */

export const QUANTIZED_COMPONENTS: readonly ComponentName[] = ['unet', 'text_encoder', 'text_encoder_2'];
export const DEFAULT_CALIBRATION_IMAGES = 8;
/** Written into the copy: what was quantized and how, for a reader of the folder (and docs/QUANTIZATION.md). */
export const QUANTIZATION_FILE = 'quantization.json';
/** protobuf's limit on one message, and so on one .onnx file without external data. */
const MAX_ONNX_FILE_BYTES = 2 ** 31 - 1;

export interface QuantizeOptions {
  calibrationImages?: number;
  /** Sampling steps per calibration picture; the folder's default steps unless given. */
  calibrationSteps?: number;
  reduceRange?: boolean;
  intraOpNumThreads?: number;
}

export interface QuantizedComponent {
  component: ComponentName;
  file: string;
  bytesBefore: number;
  bytesAfter: number;
  /** MatMul / Gemm nodes now DynamicQuantizeMatMul. */
  matmuls: number;
  /** Conv nodes now QuantizeLinear → QLinearConv → DequantizeLinear. */
  convs: number;
}

export interface QuantizeReport {
  model: string;
  out: string;
  components: QuantizedComponent[];
  calibration: CalibrationRun | null;
  folderBytes: { before: number; after: number };
  seconds: number;
}

export async function quantizeFolder(modelDir: string, outDir: string, options: QuantizeOptions = {}): Promise<QuantizeReport> {
  const started = performance.now();
  const images = options.calibrationImages ?? DEFAULT_CALIBRATION_IMAGES;
  if (!Number.isInteger(images) || images < 1 || images > 1000) {
    throw invalidInput(`--calibration-images takes a whole number from 1 to 1000; got ${images}.`);
  }
  const out = resolve(outDir);
  if (existsSync(out)) throw new EngineError('invalid_input', `${outDir} already exists; give --out a folder that does not exist yet (nothing was written).`, { file: outDir });
  if (!existsSync(dirname(out))) throw invalidInput(`${dirname(outDir)} does not exist; create it first, or give --out a folder inside an existing one.`, { file: outDir });
  const description = await describeModelFolder(modelDir);
  const components = description.components.filter((name) => QUANTIZED_COMPONENTS.includes(name));

  const plans = new Map<ComponentName, Int8Plan>();
  for (const component of components) {
    const label = join(modelDir, component, 'model.onnx');
    const file = join(description.dir, component, 'model.onnx');
    let model;
    try {
      model = readOnnxModel(file, await readFile(file));
    } catch (error) {
      if (error instanceof OnnxFormatError) throw modelFailure(`${label} is not a readable ONNX model (${error.message}).`, { file: label }, error);
      throw error;
    }
    plans.set(component, planInt8(model, label));
  }

  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
  try {
    await cp(description.dir, partial, { recursive: true });
    let calibration: CalibrationRun | null = null;
    const unetPlan = plans.get('unet');
    let ranges = new Map<string, ActivationRange>();
    if (unetPlan && unetPlan.convs.length > 0) {
      // The pipeline runs the copy with a UNet that also outputs every convolution's input and output.
      await writeFile(join(partial, 'unet', 'model.onnx'), calibrationModel(unetPlan));
      // One UNet session with every thread: calibration observes each UNet call on this thread.
      const calibrating = await loadModelFolder(partial, { intraOpNumThreads: options.intraOpNumThreads, unetLanes: 1 });
      try {
        const measured = await calibrateUnet(calibrating, calibrationTensors(unetPlan), images, options.calibrationSteps);
        ranges = measured.ranges;
        calibration = measured.run;
      } finally {
        await calibrating.release();
      }
    }

    const quantized: QuantizedComponent[] = [];
    for (const [component, plan] of plans) {
      const { bytes, counts } = await rewriteInt8(plan, ranges, { reduceRange: options.reduceRange });
      const file = join(component, 'model.onnx');
      if (bytes.length > MAX_ONNX_FILE_BYTES) {
        throw new EngineError(
          'invalid_input',
          `${plan.label} would be ${(bytes.length / 1024 ** 3).toFixed(1)} GB in int8, over the 2 GB a single ONNX file can hold; writing int8 weights to an external data file is not supported yet. Nothing was written.`,
          { file: plan.label },
        );
      }
      await writeFile(join(partial, file), bytes);
      // The int8 file holds every tensor inline, so the float data files it was read with are not copied over.
      for (const location of externalDataFiles(plan)) await rm(join(partial, component, location), { force: true });
      let bytesBefore = (await stat(join(description.dir, file))).size;
      for (const location of externalDataFiles(plan)) bytesBefore += (await stat(join(description.dir, component, location))).size;
      quantized.push({ component, file, bytesBefore, bytesAfter: bytes.length, ...counts });
    }
    await writeFile(
      join(partial, QUANTIZATION_FILE),
      `${JSON.stringify(
        {
          format: 'int8',
          source: description.name,
          method: {
            matmul: 'DynamicQuantizeMatMul (com.microsoft): int8 symmetric weights per output column, uint8 activations quantized per call',
            conv: 'QuantizeLinear → QLinearConv → DequantizeLinear: int8 symmetric weights per output channel, int32 bias, uint8 activations with calibrated min/max',
            weightBits: options.reduceRange ? 7 : 8,
          },
          components: quantized,
          calibration: calibration && { images: calibration.images, steps: calibration.steps, prompts: calibration.prompts },
        },
        null,
        2,
      )}\n`,
    );

    // The copy must open in the engine before it takes --out's name.
    const check = await loadModelFolder(partial, { intraOpNumThreads: options.intraOpNumThreads });
    await check.release();
    const folderBytes = { before: await folderSize(description.dir), after: await folderSize(partial) };
    await rename(partial, out);
    return { model: description.name, out: outDir, components: quantized, calibration, folderBytes, seconds: (performance.now() - started) / 1000 };
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

/** Bytes of every file under a folder. */
export async function folderSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}
