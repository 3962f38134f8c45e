import type * as ort from 'onnxruntime-node';
import type { ModelFolder } from '../model-folder.js';
import { floatData, idsTensor } from '../tensors.js';
import { conceptsNamedIn, nearestConcepts, unknownConceptWarning } from '../vocabulary.js';
import type { PipelineRun } from './stages.js';

const LABEL_BATCH = 64;
// The label vectors are computed once per opened folder, the first time a prompt names nothing the model knows.
const labelVectorsByModel = new WeakMap<ModelFolder, Promise<Float32Array[]>>();

/**
 * The warning a result carries when its prompt names none of the concepts in the folder's vocabulary.json, with the
 * concepts whose label vectors lie closest to the prompt's (the text encoder's pooled output, or its mean hidden state
 * for an export without one). A folder without a vocabulary gets no check.
 */
export async function checkVocabulary(run: PipelineRun, promptOutputs: ort.InferenceSession.ReturnType, promptRow: number): Promise<void> {
  const { model, settings } = run;
  const vocabulary = model.description.vocabulary;
  if (!vocabulary || conceptsNamedIn(settings.prompt, vocabulary).length > 0) return;
  let labelVectors = labelVectorsByModel.get(model);
  if (!labelVectors) {
    labelVectors = encodeLabels(run, vocabulary.concepts.map((concept) => concept.label));
    labelVectorsByModel.set(model, labelVectors);
  }
  const nearest = nearestConcepts(promptVectors(model, promptOutputs)[promptRow], await labelVectors, vocabulary);
  run.warnings.push(unknownConceptWarning(settings.prompt, vocabulary, nearest));
}

async function encodeLabels(run: PipelineRun, labels: string[]): Promise<Float32Array[]> {
  const { model } = run;
  const vectors: Float32Array[] = [];
  for (let first = 0; first < labels.length; first += LABEL_BATCH) {
    const ids = labels.slice(first, first + LABEL_BATCH).map((label) => model.tokenizer.encode(label).ids);
    const outputs = await run.run('textEncoderMs', model.textEncoder, { [model.textEncoder.ids.name]: idsTensor(model.textEncoder.ids, ids) });
    vectors.push(...promptVectors(model, outputs));
  }
  return vectors;
}

function promptVectors(model: ModelFolder, outputs: ort.InferenceSession.ReturnType): Float32Array[] {
  const { pooled, hiddenStates } = model.textEncoder;
  if (pooled) {
    const tensor = outputs[pooled];
    const data = floatData(tensor);
    const [rows, width] = tensor.dims;
    return Array.from({ length: rows }, (_, r) => data.slice(r * width, (r + 1) * width));
  }
  const tensor = outputs[hiddenStates];
  const data = floatData(tensor);
  const [rows, tokens, width] = tensor.dims;
  return Array.from({ length: rows }, (_, r) => {
    const mean = new Float32Array(width);
    for (let t = 0; t < tokens; t++) for (let k = 0; k < width; k++) mean[k] += data[(r * tokens + t) * width + k] / tokens;
    return mean;
  });
}
