/**
 * What a prompt may hold beyond its length, checked once here and read by every layer (the job schema, the chat's
 * option parsing, the pipeline's input check). PostgreSQL refuses U+0000 in text and jsonb, so a NUL that got as far
 * as the store turned into "the queue is unavailable"; other control characters and lone surrogates mean nothing to
 * the tokenizer. Tab, line feed and carriage return are whitespace people paste, so they stay.
 */
const CONTROL_CHARACTER = /(?![\t\n\r])[\p{Cc}\p{Cs}]/u;

/**
 * A prompt must show something: a letter, digit, punctuation mark or symbol. Whitespace, format characters (zero-width
 * space, U+202E and the other bidi controls, U+FEFF), combining marks on nothing, and the Hangul fillers and braille
 * blank (letters and symbols by category, drawn as nothing) do not count.
 */
const VISIBLE_CHARACTER = /(?![\u115F\u1160\u3164\uFFA0\u2800])[\p{L}\p{N}\p{P}\p{S}]/u;

const codePointName = (character: string) => `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/** The first control character in the text, as `U+XXXX` and its 1-based character position, or undefined. */
export function controlCharacterIn(text: string): { codePoint: string; position: number } | undefined {
  const match = CONTROL_CHARACTER.exec(text);
  if (!match) return undefined;
  return { codePoint: codePointName(match[0]), position: [...text.slice(0, match.index)].length + 1 };
}

export const hasVisibleCharacter = (text: string): boolean => VISIBLE_CHARACTER.test(text);

/**
 * Why this text cannot be a prompt (or, with `mayBeBlank`, a negative prompt), phrased to follow "the prompt …", or
 * undefined when it can. Length is checked separately against LIMITS.promptChars.
 */
export function promptTextProblem(text: string, options: { mayBeBlank?: boolean } = {}): string | undefined {
  const control = controlCharacterIn(text);
  if (control) return `holds a control character (${control.codePoint} at character ${control.position}); remove it`;
  if (!options.mayBeBlank && !hasVisibleCharacter(text)) {
    return 'has no visible character (only spaces, invisible or combining characters); describe the picture in words';
  }
  return undefined;
}
