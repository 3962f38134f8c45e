"""The networks of the embedded default model, sized to train on a 2-core CPU.

- `KLAutoencoder`: 64×64×3 ↔ 16×16×4 (a 4× VAE: three resolutions, so diffusers' 2**(len(block_out_channels)-1) = 4).
- `TextEncoder`: a CLIP-style causal transformer over BPE ids; last_hidden_state [B,L,H] and pooler_output [B,H]
  (the hidden state at the first EOS, which is the highest id in CLIP vocabularies, exactly as CLIP pools).
- `UNet`: 16×16×4 latents, three resolutions, cross-attention to the text states at every level.
- `Upscaler`: a small 4× super-resolution net with ESRGAN's I/O ([B,3,h,w] in [0,1] → [B,3,4h,4w]).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LATENT_CHANNELS = 4


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels, eps=1e-6)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a skip. With `scale_shift`, the conditioning vector sets a scale and shift of the
    second norm (AdaGN, as in improved DDPM / diffusers' "scale_shift" time embedding) instead of being added."""

    def __init__(self, in_channels: int, out_channels: int, time_channels: int = 0, scale_shift: bool = False):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.scale_shift = scale_shift
        self.time = nn.Linear(time_channels, out_channels * (2 if scale_shift else 1)) if time_channels else None
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time is not None and time is not None:
            condition = self.time(F.silu(time))[:, :, None, None]
            if self.scale_shift:
                scale, shift = condition.chunk(2, dim=1)
                h = self.norm2(h) * (1 + scale) + shift
            else:
                h = self.norm2(h + condition)
        else:
            h = self.norm2(h)
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


# ---------------------------------------------------------------------------------------------- autoencoder


class KLAutoencoder(nn.Module):
    block_out_channels = (32, 64, 128)

    def __init__(self):
        super().__init__()
        c0, c1, c2 = self.block_out_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c0, 3, padding=1),
            ResBlock(c0, c0),
            nn.Conv2d(c0, c0, 3, stride=2, padding=1),
            ResBlock(c0, c1),
            nn.Conv2d(c1, c1, 3, stride=2, padding=1),
            ResBlock(c1, c2),
            ResBlock(c2, c2),
            group_norm(c2),
            nn.SiLU(),
            nn.Conv2d(c2, 2 * LATENT_CHANNELS, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(LATENT_CHANNELS, c2, 3, padding=1),
            ResBlock(c2, c2),
            ResBlock(c2, c2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c2, c1, 3, padding=1),
            ResBlock(c1, c1),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c1, c0, 3, padding=1),
            ResBlock(c0, c0),
            group_norm(c0),
            nn.SiLU(),
            nn.Conv2d(c0, 3, 3, padding=1),
        )

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image in [-1,1] → (mean, logvar) of the latent posterior, unscaled."""
        moments = self.encoder(image)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)


# ---------------------------------------------------------------------------------------------- attention


class Attention(nn.Module):
    """Multi-head attention written out with matmuls, so ONNX export never meets torch's fused fast paths."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch, length, dim = x.shape
        head_dim = dim // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, -1, self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        scores = q @ k.transpose(-1, -2) * (head_dim ** -0.5)
        if mask is not None:
            scores = scores + mask
        out = scores.softmax(dim=-1) @ v
        return self.to_out(out.transpose(1, 2).reshape(batch, length, dim))


# ---------------------------------------------------------------------------------------------- text encoder


class TextLayer(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), mask=mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class TextEncoder(nn.Module):
    """CLIP-style causal transformer over BPE ids; last_hidden_state [B,L,H] and pooler_output [B,H] (the state at the
    first EOS, the highest id, as CLIP pools).

    With `embedding_dim`, token embeddings are factorized ([vocab, embedding_dim] then a projection to the width), which
    keeps a large vocabulary small. With `word_vectors` as well ([vocab, embedding_dim], zero rows for tokens without
    one), whole-word tokens keep their pretrained vector frozen and only the others learn theirs, so words the
    captions never used keep the neighbours their vectors give them ("kitty" near "cat"); `fold_word_vectors()` writes
    the frozen rows into the table for export."""

    def __init__(self, vocab_size: int, max_length: int, width: int = 128, layers: int = 3, heads: int = 4,
                 embedding_dim: int | None = None, word_vectors: torch.Tensor | None = None, dropout: float = 0.0):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, embedding_dim or width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.token_projection = nn.Linear(embedding_dim, width, bias=False) if embedding_dim else None
        if word_vectors is not None:
            self.register_buffer("word_vectors", word_vectors.float(), persistent=False)
            self.register_buffer("has_vector", (word_vectors.abs().sum(dim=1, keepdim=True) > 0).float(), persistent=False)
        else:
            self.word_vectors = None
        self.position_embedding = nn.Parameter(torch.randn(max_length, width) * 0.01)
        self.layers = nn.ModuleList([TextLayer(width, heads, dropout) for _ in range(layers)])
        self.final_norm = nn.LayerNorm(width)
        # CLIP's causal mask: a token never sees the padding after it, so padding length cannot change the prompt's states.
        causal = torch.full((max_length, max_length), float("-inf")).triu(1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        tokens = self.token_embedding(input_ids)
        if self.word_vectors is not None:
            has = self.has_vector[input_ids]
            tokens = has * self.word_vectors[input_ids] + (1.0 - has) * tokens
        return self.token_projection(tokens) if self.token_projection is not None else tokens

    @torch.no_grad()
    def fold_word_vectors(self) -> None:
        if self.word_vectors is not None:
            table = self.has_vector * self.word_vectors + (1.0 - self.has_vector) * self.token_embedding.weight
            self.token_embedding.weight.copy_(table)
            self.word_vectors = None

    def forward(self, input_ids: torch.Tensor, embedding_noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        length = input_ids.shape[1]
        tokens = self.embed(input_ids)
        if embedding_noise > 0:
            tokens = tokens + embedding_noise * torch.randn_like(tokens) * tokens.detach().std()
        hidden = tokens + self.position_embedding[:length]
        mask = self.causal_mask[:length, :length]
        for layer in self.layers:
            hidden = layer(hidden, mask)
        hidden = self.final_norm(hidden)
        eos_position = input_ids.argmax(dim=-1)
        pooled = hidden[torch.arange(hidden.shape[0]), eos_position]
        return hidden, pooled


# ---------------------------------------------------------------------------------------------- U-Net


def timestep_embedding(timestep: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = timestep.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class CrossAttentionBlock(nn.Module):
    """Self-attention, cross-attention to the text, feed-forward: SD's BasicTransformerBlock, one layer deep."""

    def __init__(self, channels: int, context_dim: int, heads: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.norm1 = nn.LayerNorm(channels)
        self.self_attention = Attention(channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        self.cross_attention = Attention(channels, heads, context_dim)
        self.norm3 = nn.LayerNorm(channels)
        self.feed_forward = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        h = h + self.self_attention(self.norm1(h))
        h = h + self.cross_attention(self.norm2(h), context)
        h = h + self.feed_forward(self.norm3(h))
        h = h.transpose(1, 2).reshape(batch, channels, height, width)
        return x + self.proj_out(h)


class NoAttention(nn.Module):
    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return x


class AttentionPool(nn.Module):
    """One learned query attending over the text states: a pooled prompt vector computed inside the U-Net, so the
    global conditioning path needs no input beyond SD's `encoder_hidden_states`."""

    def __init__(self, context_dim: int, heads: int = 4):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, context_dim) * 0.02)
        self.attention = Attention(context_dim, heads)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(context.shape[0], 1, context.shape[2])
        return self.attention(query, context)[:, 0]


class UNet(nn.Module):
    """Three resolutions (16, 8, 4 for 16×16 latents); attention only where it is cheap (8×8 and 4×4 by default).
    The timestep embedding plus a pooled prompt vector (`AttentionPool`) condition every ResBlock by scale and shift;
    cross-attention gives the text to each position as in SD."""

    def __init__(self, context_dim: int, channels: tuple[int, int, int] = (64, 128, 128), heads: int = 4,
                 attention_levels: tuple[bool, bool, bool] = (False, True, True)):
        super().__init__()
        self.channels = channels
        c0, c1, c2 = channels
        time_channels = 4 * c0

        def attention(level: int, width: int) -> nn.Module:
            return CrossAttentionBlock(width, context_dim, heads) if attention_levels[level] else NoAttention()

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, time_channels, scale_shift=True)

        self.time_mlp = nn.Sequential(nn.Linear(c0, time_channels), nn.SiLU(), nn.Linear(time_channels, time_channels))
        self.text_pool = AttentionPool(context_dim, heads)
        self.text_mlp = nn.Sequential(nn.Linear(context_dim, time_channels), nn.SiLU(), nn.Linear(time_channels, time_channels))
        self.conv_in = nn.Conv2d(LATENT_CHANNELS, c0, 3, padding=1)

        self.down0 = res(c0, c0)
        self.attn_down0 = attention(0, c0)
        self.downsample0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.down1 = res(c0, c1)
        self.attn_down1 = attention(1, c1)
        self.downsample1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = res(c1, c2)
        self.attn_down2 = attention(2, c2)

        self.mid1 = res(c2, c2)
        self.attn_mid = CrossAttentionBlock(c2, context_dim, heads)
        self.mid2 = res(c2, c2)

        self.up2 = res(c2 + c2, c2)
        self.attn_up2 = attention(2, c2)
        self.upsample2 = nn.Conv2d(c2, c1, 3, padding=1)
        self.up1 = res(c1 + c1, c1)
        self.attn_up1 = attention(1, c1)
        self.upsample1 = nn.Conv2d(c1, c0, 3, padding=1)
        self.up0 = res(c0 + c0, c0)
        self.attn_up0 = attention(0, c0)

        self.norm_out = group_norm(c0)
        self.conv_out = nn.Conv2d(c0, LATENT_CHANNELS, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        time = self.time_mlp(timestep_embedding(timestep, self.channels[0])) + self.text_mlp(self.text_pool(context))
        h = self.conv_in(sample)
        skip0 = self.attn_down0(self.down0(h, time), context)
        h = self.downsample0(skip0)
        skip1 = self.attn_down1(self.down1(h, time), context)
        h = self.downsample1(skip1)
        skip2 = self.attn_down2(self.down2(h, time), context)

        h = self.mid2(self.attn_mid(self.mid1(skip2, time), context), time)

        h = self.attn_up2(self.up2(torch.cat([h, skip2], dim=1), time), context)
        h = self.upsample2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.attn_up1(self.up1(torch.cat([h, skip1], dim=1), time), context)
        h = self.upsample1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.attn_up0(self.up0(torch.cat([h, skip0], dim=1), time), context)
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------------------------------------- upscaler


class Upscaler(nn.Module):
    """ESRGAN I/O in a few residual blocks and two pixel-shuffle 2× steps, predicting a residual over bilinear."""

    def __init__(self, width: int = 32, blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(
            *[nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, width, 3, padding=1)) for _ in range(blocks)]
        )
        self.up = nn.Sequential(
            nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.head(image)
        for block in self.body:
            h = h + block(h)
        base = F.interpolate(image, scale_factor=4.0, mode="bilinear", align_corners=False)
        return (base + self.up(h)).clamp(0.0, 1.0)
