import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import type { RgbImage } from '../engine/types.js';

/**
 * The judge of `eval:model` and `bench:fast`: models/eval/classifier.onnx, trained on real emoji images only (never on
 * generated ones), ranks a picture's concepts. An image scores top-1 / top-5 when the concept asked for is its first /
 * among its first five guesses (chance 1/552, 5/552).
 */

export const JUDGE_SIDE_PX = 64;

export const judgeLabelsSchema = z.object({
  labels: z.array(z.object({ id: z.string(), label: z.string(), category: z.string() })),
  heldout: z.object({ top1: z.number(), top5: z.number() }).passthrough(),
});
export type JudgeLabels = z.infer<typeof judgeLabelsSchema>;

export interface Judge {
  labels: JudgeLabels;
  /** Label indices of each image, best first (five). */
  rank(images: readonly RgbImage[]): Promise<number[][]>;
  release(): Promise<void>;
}

/** The judge, checked against the concept ids (in order) of the folder whose pictures it will score. */
export async function loadJudge(classifierFile: string, labelsFile: string, conceptIds: readonly string[], threads?: number): Promise<Judge> {
  const labels = judgeLabelsSchema.parse(JSON.parse(await readFile(labelsFile, 'utf8')));
  if (labels.labels.map((l) => l.id).join('\n') !== conceptIds.join('\n')) {
    throw new Error(`${labelsFile} does not list the model's vocabulary.json concepts in its order: retrain the judge (models/eval/train_classifier.py).`);
  }
  const classifier = await ort.InferenceSession.create(classifierFile, threads ? { intraOpNumThreads: threads } : {});
  const classes = conceptIds.length;
  return {
    labels,
    // The classifier takes [N, 3, 64, 64] RGB in [0, 1].
    async rank(images) {
      const side = JUDGE_SIDE_PX;
      const plane = side * side;
      const input = new Float32Array(images.length * 3 * plane);
      images.forEach((image, n) => {
        if (image.width !== side || image.height !== side) {
          throw new Error(`The judge takes ${side}x${side} images; this model made ${image.width}x${image.height}.`);
        }
        for (let pixel = 0; pixel < plane; pixel++) {
          for (let colour = 0; colour < 3; colour++) input[(n * 3 + colour) * plane + pixel] = image.data[pixel * 3 + colour] / 255;
        }
      });
      const outputs = await classifier.run({ image: new ort.Tensor('float32', input, [images.length, 3, side, side]) });
      const logits = outputs.logits.data as Float32Array;
      return images.map((_, n) => {
        const row = logits.subarray(n * classes, (n + 1) * classes);
        return [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, 5);
      });
    },
    release: () => classifier.release(),
  };
}

/** `count` indices spread evenly over 0…total-1, so every category is represented in a subset. */
export function spread(total: number, count: number): number[] {
  const n = Math.min(count, total);
  return Array.from({ length: n }, (_, k) => Math.floor((k * total) / n));
}
