import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { modelFailure } from './errors.js';
import { readJson, readJsonIfPresent } from './json-files.js';

/** Token ids for one prompt, padded to the text encoder's length, with what truncation dropped. */
export interface EncodedPrompt {
  /** Exactly `maxLength` ids: BOS, content, EOS, then padding. */
  ids: number[];
  /** Content tokens that did not fit (from the first whole word that did not); EOS is always kept as the last real token. */
  droppedTokens: number;
  /** The dropped part of the prompt, decoded, so a user can be told what was ignored. */
  droppedText: string;
}

export interface PromptTokenizer {
  readonly maxLength: number;
  encode(text: string): EncodedPrompt;
}

const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';

/**
 * A CLIP-style BPE tokenizer from a model folder's `tokenizer/`: either `tokenizer.json` (Hugging Face tokenizers
 * format) or the SD 1.x pair `vocab.json` + `merges.txt`, which we turn into the equivalent tokenizer.json in memory.
 * The library does no padding or truncation, so both happen here.
 */
export async function loadTokenizer(dir: string, fallbackMaxLength: number): Promise<PromptTokenizer> {
  const config = await readJsonIfPresent(join(dir, 'tokenizer_config.json'));
  const specialTokens = await readJsonIfPresent(join(dir, 'special_tokens_map.json'));
  const definition = existsSync(join(dir, 'tokenizer.json'))
    ? await readJson(join(dir, 'tokenizer.json'))
    : await clipDefinitionFromVocabAndMerges(dir);

  const tokenizer = new Tokenizer(definition, config ?? {});
  const idOf = (token: string, file: string): number => {
    const id = tokenizer.token_to_id(token);
    if (id === undefined) {
      throw modelFailure(`${join(dir, file)} has no token ${JSON.stringify(token)}; a CLIP tokenizer needs ${BOS} and ${EOS}.`);
    }
    return id;
  };
  const bosId = idOf(BOS, 'tokenizer');
  const eosId = idOf(EOS, 'tokenizer');
  const padToken = tokenName(config?.pad_token) ?? tokenName(specialTokens?.pad_token) ?? EOS;
  const padId = idOf(padToken, 'tokenizer_config.json');

  const declaredMax = Number(config?.model_max_length);
  // Tokenizer configs often say 1e30 ("no limit"); the text encoder's position table is the real limit then.
  const maxLength = Number.isInteger(declaredMax) && declaredMax >= 3 && declaredMax <= 4096 ? declaredMax : fallbackMaxLength;

  /**
   * Where to cut a prompt too long for the encoder: after the last whole word that fits, so that no half word reaches
   * the model and the user is told of whole words. CLIP's BPE marks a word's last token with `</w>`; a vocabulary
   * without such marks is cut at the token limit.
   */
  const wordBoundaryBefore = (content: number[], room: number): number => {
    for (let end = room; end > 0; end--) {
      if (tokenizer.id_to_token(content[end - 1])?.endsWith('</w>')) return end;
    }
    return room;
  };

  return {
    maxLength,
    encode(text: string): EncodedPrompt {
      const content = tokenizer.encode(text, { add_special_tokens: false }).ids;
      const room = maxLength - 2;
      const cut = content.length > room ? wordBoundaryBefore(content, room) : content.length;
      const kept = content.slice(0, cut);
      const dropped = content.slice(cut);
      const ids = [bosId, ...kept, eosId];
      while (ids.length < maxLength) ids.push(padId);
      return {
        ids,
        droppedTokens: dropped.length,
        droppedText: dropped.length > 0 ? tokenizer.decode(dropped, { skip_special_tokens: true }).replaceAll('</w>', ' ').replace(/\s+/g, ' ').trim() : '',
      };
    },
  };
}

/** The tokenizer.json that Hugging Face's CLIPTokenizerFast converter produces for a vocab.json + merges.txt pair. */
async function clipDefinitionFromVocabAndMerges(dir: string): Promise<object> {
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  for (const path of [vocabPath, mergesPath]) {
    if (!existsSync(path)) {
      throw modelFailure(`${dir} needs either tokenizer.json or both vocab.json and merges.txt; ${path} is missing.`);
    }
  }
  const vocab = (await readJson(vocabPath)) as Record<string, number>;
  const merges = (await readFile(mergesPath, 'utf8'))
    .split('\n')
    .filter((line: string) => line.length > 0 && !line.startsWith('#version'));
  const special = (content: string) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(BOS), special(EOS)].filter((token) => token.id !== undefined),
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}
