import { z } from 'zod';

/**
 * What a model folder says it was trained to draw (`vocabulary.json`, as models/train/build_vocabulary.mjs writes it
 * for the default model). A folder without one — any Stable Diffusion export — has no vocabulary and gets no
 * warnings: those models know far more than a list could say.
 */
export const vocabularySchema = z.object({
  concepts: z
    .array(
      z.object({
        id: z.string().min(1),
        label: z.string().min(1),
        synonyms: z.array(z.string()),
        category: z.string().min(1),
        plural: z.string().nullable().optional(),
      }),
    )
    .min(1),
});
export type Vocabulary = z.infer<typeof vocabularySchema>;
export type Concept = Vocabulary['concepts'][number];

const SUGGESTIONS = 3;

function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[’']/g, '')
    .split(/[^\p{L}\p{N}-]+/u)
    .filter((word) => word.length > 0);
}

/** A word and the singulars it might be the plural of ("foxes" → fox, foxe; "cherries" → cherry). */
function forms(word: string): string[] {
  const found = [word];
  if (word.endsWith('ies')) found.push(`${word.slice(0, -3)}y`);
  if (word.endsWith('es')) found.push(word.slice(0, -2));
  if (word.endsWith('s')) found.push(word.slice(0, -1));
  return found;
}

/** Every phrase a concept answers to, as word lists: its label, synonyms and plural. */
function phrasesOf(concept: Concept): string[][] {
  return [concept.label, ...concept.synonyms, ...(concept.plural ? [concept.plural] : [])].map(words).filter((p) => p.length > 0);
}

/** The concepts a prompt names: a label, synonym or plural appearing in it as whole words ("two red foxes" → fox). */
export function conceptsNamedIn(prompt: string, vocabulary: Vocabulary): Concept[] {
  const promptWords = words(prompt);
  const variants = promptWords.map((word) => new Set(forms(word)));
  const matchesAt = (phrase: string[], start: number) => phrase.every((word, k) => variants[start + k]?.has(word));
  return vocabulary.concepts.filter((concept) =>
    phrasesOf(concept).some((phrase) => promptWords.some((_, start) => matchesAt(phrase, start))),
  );
}

/** The concepts whose label vectors point closest to the prompt's (cosine), best first. */
export function nearestConcepts(promptVector: Float32Array, labelVectors: Float32Array[], vocabulary: Vocabulary, count = SUGGESTIONS): Concept[] {
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0)) || 1;
  const promptNorm = norm(promptVector);
  const scored = labelVectors.map((vector, index) => {
    let dot = 0;
    for (let k = 0; k < vector.length; k++) dot += vector[k] * promptVector[k];
    return { index, score: dot / (norm(vector) * promptNorm) };
  });
  return scored
    .sort((a, b) => b.score - a.score)
    .slice(0, count)
    .map(({ index }) => vocabulary.concepts[index]);
}

/** The warning a result carries when its prompt names nothing the model knows. */
export function unknownConceptWarning(prompt: string, vocabulary: Vocabulary, nearest: Concept[]): string {
  const closest = nearest.map((concept) => concept.label).join(', ');
  return `This model knows ${vocabulary.concepts.length} things and "${prompt}" names none of them, so expect something else; closest: ${closest}.`;
}

/** A few labels from across the categories, for /help and /settings: what to try first. */
export function vocabularySample(vocabulary: Vocabulary, count = 12): string[] {
  const byCategory = new Map<string, Concept[]>();
  for (const concept of vocabulary.concepts) byCategory.set(concept.category, [...(byCategory.get(concept.category) ?? []), concept]);
  const categories = [...byCategory.values()];
  const sample: string[] = [];
  for (let round = 0; sample.length < count && round < vocabulary.concepts.length; round++) {
    for (const members of categories) {
      const concept = members[Math.floor((round * 7) % members.length)];
      if (sample.length < count && !sample.includes(concept.label)) sample.push(concept.label);
    }
  }
  return sample;
}
