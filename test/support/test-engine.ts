import sharp from 'sharp';
import { ImagineError, modelFailure } from '../../src/core/errors.js';
import type { EngineOutput, ImageEngine } from '../../src/core/ports.js';

/**
 * A deterministic stand-in for the diffusion engine: `steps` steps of `stepDelayMs` each, checking the abort signal
 * between steps like the real one, then one flat-colored PNG per image (color from the seed). Prompts steer failures:
 * "fail: model" → model_failure, "fail: transient once" → transient on the first attempt only, "fail: oom" → an
 * ONNX Runtime style allocation error.
 */
export function createTestEngine(options: { modelName?: string; stepDelayMs?: number } = {}): ImageEngine & { generateCalls: string[] } {
  const generateCalls: string[] = [];
  return {
    modelName: options.modelName ?? 'test-model',
    generateCalls,
    async generate(request, hooks): Promise<EngineOutput> {
      const { params, generationId } = request;
      const earlierAttempts = generateCalls.filter((id) => id === generationId).length;
      generateCalls.push(generationId);
      if (params.prompt === 'fail: model') throw modelFailure('The model produced NaNs for this prompt.');
      if (params.prompt === 'fail: transient once' && earlierAttempts === 0) {
        throw new ImagineError('transient', 'The GPU was busy.');
      }
      if (params.prompt === 'fail: oom') throw new Error('Failed to allocate memory for requested buffer of size 1073741824');
      for (let step = 1; step <= params.steps; step += 1) {
        hooks.signal?.throwIfAborted();
        await new Promise((resolve) => setTimeout(resolve, options.stepDelayMs ?? 0));
        hooks.onStep?.({
          step,
          totalSteps: params.steps,
          preview: () => sharp({ create: { width: 8, height: 8, channels: 3, background: { r: step, g: 0, b: 0 } } }).webp().toBuffer(),
        });
      }
      hooks.signal?.throwIfAborted();
      const seeds = Array.from({ length: params.batch }, (_, index) => params.seed + index);
      const images = await Promise.all(
        seeds.map((seed) =>
          sharp({ create: { width: 16, height: 16, channels: 3, background: { r: seed % 256, g: (seed >> 8) % 256, b: 128 } } })
            .png()
            .toBuffer(),
        ),
      );
      const grid =
        images.length > 1
          ? await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } })
              .composite(images.map((input, index) => ({ input, left: (index % 2) * 16, top: Math.floor(index / 2) * 16 })))
              .png()
              .toBuffer()
          : undefined;
      return { images, grid, seeds, timingsMs: { totalMs: 0 } };
    },
  };
}
