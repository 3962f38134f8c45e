"""A small CLIP-format byte-level BPE: trainer, writers and a reference encoder.

The files it writes load in Hugging Face transformers/diffusers and in our TypeScript engine exactly like
openai/clip-vit-base-patch32's tokenizer, only with a much smaller vocabulary:

- ids 0-255 are the 256 byte symbols of GPT-2/CLIP's byte-to-unicode map, ids 256-511 the same symbols with the
  end-of-word suffix ``</w>``, then one id per learned merge (in merge order), then ``<|startoftext|>`` and
  ``<|endoftext|>`` as the last two ids. Padding uses ``<|endoftext|>`` (as in Stable Diffusion 1.x).
- ``merges.txt`` starts with ``#version: 0.2`` and lists one merge per line, highest priority first.

API (used by test/fixtures/make_models.py and by the default-model training in models/train/):

    train_bpe(words, vocab_size) -> (vocab, merges)
    write_vocab_merges(dir, vocab, merges)          # vocab.json + merges.txt (+ tokenizer_config, special_tokens_map)
    write_tokenizer_json(path, vocab, merges, max_length=77)
    encode(text, vocab, merges) -> list[int]        # BOS + tokens + EOS, no padding

Standard library only, so any Python 3.9+ can run it.
"""

from __future__ import annotations

import heapq
import json
import os
import unicodedata
from collections import Counter
from functools import lru_cache

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END_OF_WORD = "</w>"

# The pre-tokenizer pattern of CLIP's tokenizer.json. Python's `re` has no \p{L}, so `pre_tokenize` below scans
# with unicodedata categories instead; this string is only written into tokenizer.json.
CLIP_SPLIT_REGEX = (
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"
)
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters (so no symbol is whitespace/control)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


def normalize(text: str) -> str:
    """CLIP's text cleaning as tokenizer.json states it: NFC, runs of whitespace to one space, lower case."""
    collapsed = " ".join(unicodedata.normalize("NFC", text).split())
    return collapsed.lower()


def _kind(char: str) -> str:
    if char.isspace():
        return "space"
    category = unicodedata.category(char)
    if category.startswith("L"):
        return "letter"
    if category.startswith("N"):
        return "number"
    return "other"


def pre_tokenize(text: str) -> list[str]:
    """Split normalized text the way CLIP_SPLIT_REGEX does (alternatives tried in order at each position)."""
    pieces: list[str] = []
    i = 0
    while i < len(text):
        matched = next((s for s in (BOS, EOS) + _CONTRACTIONS if text.startswith(s, i)), None)
        if matched is not None:
            pieces.append(matched)
            i += len(matched)
            continue
        kind = _kind(text[i])
        if kind == "space":
            i += 1
            continue
        if kind == "number":
            pieces.append(text[i])
            i += 1
            continue
        j = i + 1
        while j < len(text) and _kind(text[j]) == kind:
            j += 1
        pieces.append(text[i:j])
        i = j
    return pieces


def _word_symbols(word: str) -> tuple[str, ...]:
    byte_map = bytes_to_unicode()
    chars = [byte_map[b] for b in word.encode("utf-8")]
    return tuple(chars[:-1]) + (chars[-1] + END_OF_WORD,)


def base_vocab() -> list[str]:
    symbols = list(bytes_to_unicode().values())
    return symbols + [s + END_OF_WORD for s in symbols]


def train_bpe(words: list[str], vocab_size: int, weights: list[int] | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn merges from a corpus until the vocabulary (512 byte symbols + merges + 2 specials) reaches vocab_size.

    `words` may be raw text; it is normalized and pre-tokenized like prompts are; `weights` counts each text that many
    times (as if repeated). The most frequent adjacent pair is
    merged first; ties go to the lexicographically smallest pair, so training is deterministic. Training stops
    early when no pair occurs twice.
    """
    minimum = 512 + 2
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (256 bytes, 256 end-of-word bytes, 2 specials)")
    counts: Counter[tuple[str, ...]] = Counter()
    for k, text in enumerate(words):
        for piece in pre_tokenize(normalize(text)):
            if piece not in (BOS, EOS):
                counts[_word_symbols(piece)] += 1 if weights is None else weights[k]

    vocab_list = base_vocab()
    known = set(vocab_list)
    merges: list[tuple[str, str]] = []
    # Pair counts are kept up to date incrementally (only the words a merge touches are recounted) and the best pair
    # comes from a heap with stale entries skipped: the same merges as recounting everything after each merge, in
    # time that grows with the words touched rather than with the whole corpus.
    symbols_of = [tuple(symbols) for symbols in counts]
    frequency = [counts[symbols] for symbols in symbols_of]
    pair_counts: Counter[tuple[str, str]] = Counter()
    words_with: dict[tuple[str, str], set[int]] = {}
    for index, symbols in enumerate(symbols_of):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += frequency[index]
            words_with.setdefault(pair, set()).add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while len(known) + 2 < vocab_size:
        best = None
        while heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) == -negative_count and negative_count < 0:
                best, best_count = pair, -negative_count
                break
        if best is None or best_count < 2:
            break
        merges.append(best)
        merged = best[0] + best[1]
        # Two different pairs can spell the same token ("ab"+"c", "a"+"bc"); the token keeps its first id.
        if merged not in known:
            known.add(merged)
            vocab_list.append(merged)
        changed: set[tuple[str, str]] = set()
        for index in words_with.pop(best, set()):
            symbols = symbols_of[index]
            merged_symbols = _apply_merge(symbols, best, merged)
            if merged_symbols == symbols:
                continue
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] -= frequency[index]
                changed.add(pair)
            for pair in zip(merged_symbols, merged_symbols[1:]):
                pair_counts[pair] += frequency[index]
                words_with.setdefault(pair, set()).add(index)
                changed.add(pair)
            symbols_of[index] = merged_symbols
        for pair in changed:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair))
            else:
                pair_counts.pop(pair, None)
    vocab_list += [BOS, EOS]
    return {token: index for index, token in enumerate(vocab_list)}, merges


def _apply_merge(symbols: tuple[str, ...], pair: tuple[str, str], merged: str) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def _bpe_word(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    symbols = _word_symbols(word)
    while len(symbols) > 1:
        candidates = [(ranks[pair], pair) for pair in zip(symbols, symbols[1:]) if pair in ranks]
        if not candidates:
            break
        _, pair = min(candidates)
        symbols = _apply_merge(symbols, pair, pair[0] + pair[1])
    return list(symbols)


_RANKS_CACHE: dict[int, tuple[list, dict]] = {}


def _ranks(merges: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Merge ranks, built once per merges list (training encodes many captions with the same tokenizer)."""
    cached = _RANKS_CACHE.get(id(merges))
    if cached is None or cached[0] is not merges:
        cached = (merges, {tuple(pair): rank for rank, pair in enumerate(merges)})
        _RANKS_CACHE[id(merges)] = cached
    return cached[1]


def encode(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """Reference CLIP encoding: [BOS, tokens..., EOS], neither truncated nor padded (callers pad with EOS to 77)."""
    ranks = _ranks(merges)
    ids = [vocab[BOS]]
    for piece in pre_tokenize(normalize(text)):
        if piece in (BOS, EOS):
            ids.append(vocab[piece])
            continue
        ids.extend(vocab.get(symbol, vocab[EOS]) for symbol in _bpe_word(piece, ranks))
    ids.append(vocab[EOS])
    return ids


def tokenizer_config(max_length: int = 77) -> dict:
    return {
        "add_prefix_space": False,
        "bos_token": BOS,
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": EOS,
        "errors": "replace",
        "model_max_length": max_length,
        "pad_token": EOS,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": EOS,
    }


def special_tokens_map() -> dict:
    def token(content: str) -> dict:
        return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    return {"bos_token": token(BOS), "eos_token": token(EOS), "pad_token": EOS, "unk_token": token(EOS)}


def _write_json(path: str, value: object, indent: int | None = 2) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file, ensure_ascii=False, indent=indent)
        file.write("\n")


def write_vocab_merges(directory: str, vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int = 77) -> None:
    """The SD 1.x tokenizer/ folder: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json."""
    os.makedirs(directory, exist_ok=True)
    _write_json(os.path.join(directory, "vocab.json"), vocab, indent=None)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as file:
        file.write("#version: 0.2\n")
        file.writelines(f"{a} {b}\n" for a, b in merges)
    _write_json(os.path.join(directory, "tokenizer_config.json"), tokenizer_config(max_length))
    _write_json(os.path.join(directory, "special_tokens_map.json"), special_tokens_map())


def tokenizer_json(vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int = 77) -> dict:
    """A Hugging Face tokenizers definition with the structure of openai/clip-vit-base-patch32's tokenizer.json."""
    del max_length  # CLIP's tokenizer.json leaves truncation/padding to the caller; the limit lives in tokenizer_config.

    def added(content: str) -> dict:
        return {
            "id": vocab[content],
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": True,
            "special": True,
        }

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(BOS), added(EOS)],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "NFC"},
                {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
                {"type": "Lowercase"},
            ],
        },
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": CLIP_SPLIT_REGEX}, "behavior": "Removed", "invert": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {
            "type": "RobertaProcessing",
            "sep": [EOS, vocab[EOS]],
            "cls": [BOS, vocab[BOS]],
            "trim_offsets": False,
            "add_prefix_space": False,
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": EOS,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": END_OF_WORD,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def write_tokenizer_json(path: str, vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int = 77) -> None:
    """tokenizer.json for the newer single-file layout; pair it with tokenizer_config(max_length) beside it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _write_json(path, tokenizer_json(vocab, merges, max_length), indent=None)
