import { invalidInput } from './errors.js';

/** Midjourney runs one job per combination and caps a command at this many. */
export const MAX_PERMUTATIONS = 4;

type Alternatives = string[];

/**
 * Midjourney's permutation prompts: `a {red, green} apple` is two prompts, `a red apple` and `a green apple`. Groups
 * multiply (`{a, b} {c, d}` is four), nest (`a {red, {dark, light} blue} fox`), and `\,`, `\{`, `\}` are literal. A
 * prompt without braces is itself. More than `max` combinations, or a brace without its partner, is refused with what
 * to change.
 */
export function expandPermutations(prompt: string, max = MAX_PERMUTATIONS): string[] {
  const parser = { text: prompt, at: 0, max };
  const expanded = parseSequence(parser, false);
  if (parser.at < prompt.length) {
    throw invalidInput('The prompt has a } without its {: write options as {red, green}, or \\} for a literal brace.');
  }
  return expanded.map((text) => text.replace(/\s+/g, ' ').trim());
}

interface Parser {
  text: string;
  at: number;
  max: number;
}

/** Text and groups up to the end (or, inside a group, up to its next top-level `,` or `}`), as all its expansions. */
function parseSequence(parser: Parser, inGroup: boolean): Alternatives {
  let expansions: Alternatives = [''];
  let literal = '';
  const flush = () => {
    expansions = expansions.map((prefix) => prefix + literal);
    literal = '';
  };
  while (parser.at < parser.text.length) {
    const char = parser.text[parser.at];
    if (char === '\\' && /[,{}\\]/.test(parser.text[parser.at + 1] ?? '')) {
      literal += parser.text[parser.at + 1];
      parser.at += 2;
    } else if (char === '{') {
      parser.at += 1;
      const options = parseGroup(parser);
      flush();
      expansions = combine(parser, expansions, options);
    } else if (char === '}' || (inGroup && char === ',')) {
      break;
    } else {
      literal += char;
      parser.at += 1;
    }
  }
  flush();
  return expansions;
}

/** After a `{`: comma-separated sequences up to the matching `}`. */
function parseGroup(parser: Parser): Alternatives {
  const options: Alternatives = [];
  for (;;) {
    const option = parseSequence(parser, true);
    if (option.every((text) => text.trim() === '')) {
      throw invalidInput('The prompt has an empty option in {…}: give each option some words, as in {red, green}.');
    }
    options.push(...option.map((text) => text.trim()));
    const char = parser.text[parser.at];
    parser.at += 1;
    if (char === '}') return options;
    if (char !== ',') throw invalidInput('The prompt has a { without its }: write options as {red, green}, or \\{ for a literal brace.');
  }
}

function combine(parser: Parser, prefixes: Alternatives, options: Alternatives): Alternatives {
  const count = prefixes.length * options.length;
  if (count > parser.max) {
    throw invalidInput(`The options in {…} make at least ${count} prompts; one command runs at most ${parser.max}. Remove some options.`);
  }
  return prefixes.flatMap((prefix) => options.map((option) => prefix + option));
}
