"""T5: a pre-norm encoder-decoder with RMS norms, unscaled attention and shared relative position biases."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmexp.models.choices import check_choices
from llmexp.models.layers import (
    MLP,
    LayerKVCache,
    MultiHeadAttention,
    RelativePositionBias,
    RowBuffer,
    RowCache,
    RowStarts,
    key_padding_mask,
)


@dataclass
class T5Config:
    """Shape of a T5 (v1.0 with mlp=relu, v1.1 with mlp=geglu and untied embeddings). `vocab_size` comes from the
    tokenizer; `pad_token_id` is also the decoder's start token, as in T5."""

    vocab_size: int = 0
    n_layer: int = 2
    n_decoder_layer: int | None = None  # None: same as n_layer
    n_head: int = 4
    head_dim: int = 16
    n_embd: int = 64
    intermediate_size: int = 256
    mlp: Literal["relu", "geglu"] = "relu"
    relative_buckets: int = 32
    relative_max_distance: int = 128
    norm_eps: float = 1e-6
    dropout: float = 0.1
    tie_embeddings: bool = True
    max_seq_len: int = 512  # longest input generation keeps; relative positions themselves have no limit
    pad_token_id: int = 0
    gradient_checkpointing: bool = False

    family = "t5"

    def __post_init__(self) -> None:
        if self.n_decoder_layer is None:
            self.n_decoder_layer = self.n_layer
        check_choices(self)

    def to_dict(self) -> dict:
        return {"family": self.family, **asdict(self)}

    def build(self) -> T5:
        if self.vocab_size <= 0:
            raise ValueError("T5Config.vocab_size must be set (it comes from the tokenizer)")
        return T5(self)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count without building the model. `non_embedding` leaves out the lookup tables (the shared
        embedding, with a head tied to it, and the relative position biases)."""
        d, attn = self.n_embd, 4 * self.n_embd * self.n_head * self.head_dim
        mlp = d * self.intermediate_size * (3 if self.mlp == "geglu" else 2)
        total = self.n_layer * (attn + mlp + 2 * d) + self.n_decoder_layer * (2 * attn + mlp + 3 * d) + 2 * d
        if not self.tie_embeddings:
            total += self.vocab_size * d
        if not non_embedding:
            total += self.vocab_size * d + 2 * self.relative_buckets * self.n_head
        return total

    def flops_per_token(self, seq_len: int) -> int:
        """Per input token, with targets about as long as inputs: 6 per weight plus the attention scores of the
        encoder, the decoder and the cross-attention."""
        inner = self.n_head * self.head_dim
        attention = 12 * (self.n_layer + 2 * self.n_decoder_layer) * inner * seq_len
        head = 6 * self.vocab_size * self.n_embd if self.tie_embeddings else 0  # untied: already a weight
        return 6 * self.num_params(non_embedding=True) + head + attention


class T5Block(nn.Module):
    """Pre-norm block: self-attention, cross-attention (decoder only), feed-forward; each x + f(norm(x))."""

    def __init__(self, cfg: T5Config, decoder: bool):
        super().__init__()
        d = cfg.n_embd
        self.norm1 = nn.RMSNorm(d, eps=cfg.norm_eps)
        attention = (d, cfg.n_head, cfg.head_dim, False, cfg.dropout)
        self.self_attn = MultiHeadAttention(*attention, scale=1.0)
        self.norm_cross = nn.RMSNorm(d, eps=cfg.norm_eps) if decoder else None
        self.cross_attn = MultiHeadAttention(*attention, scale=1.0) if decoder else None
        self.norm2 = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.mlp = MLP(d, cfg.intermediate_size, cfg.mlp, False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask, bias, memory=None, memory_kv=None, cross_mask=None, cache=None, start=0):
        x = x + self.drop(self.self_attn(self.norm1(x), mask=mask, bias=bias, cache=cache, cache_start=start))
        if self.cross_attn is not None:
            kv = memory_kv if memory_kv is not None else self.cross_attn.project_kv(memory)
            x = x + self.drop(self.cross_attn(self.norm_cross(x), mask=cross_mask, memory_kv=kv))
        return x + self.drop(self.mlp(self.norm2(x)))


class T5Cache(RowCache):
    """Decoder self-attention keys/values plus the cross-attention keys/values of the encoder output and which
    encoder positions are real (`memory_mask`; rows that joined apart may have read prompts of different lengths)."""

    def __init__(self, model: T5, memory: torch.Tensor, max_len: int, memory_mask: torch.Tensor | None = None):
        cfg, param = model.config, model.shared.weight
        batch = memory.shape[0]
        layers = [
            LayerKVCache(batch, cfg.n_head, max_len, cfg.head_dim, param.device, param.dtype)
            for _ in range(cfg.n_decoder_layer)
        ]
        super().__init__(layers, batch)
        pairs = [block.cross_attn.project_kv(memory) for block in model.decoder]
        self.memory_kv = [(RowBuffer(k, dim=2), RowBuffer(v, dim=2)) for k, v in pairs]
        if memory_mask is None:
            memory_mask = torch.ones(memory.shape[:2], dtype=torch.long, device=memory.device)
        self.real = RowBuffer(memory_mask, dim=1)

    @property
    def cross(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(k.data, v.data) for k, v in self.memory_kv]

    @property
    def memory_mask(self) -> torch.Tensor:
        return self.real.data

    def row_buffers(self) -> list[RowBuffer]:
        return [*super().row_buffers(), *(buffer for pair in self.memory_kv for buffer in pair), self.real]


class T5(nn.Module):
    """(input ids, decoder input ids) -> decoder logits. `encode` and `decode` are used apart in generation."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.n_embd)
        self.encoder = nn.ModuleList(T5Block(config, decoder=False) for _ in range(config.n_layer))
        self.decoder = nn.ModuleList(T5Block(config, decoder=True) for _ in range(config.n_decoder_layer))
        args = (config.n_head, config.relative_buckets, config.relative_max_distance)
        self.encoder_bias = RelativePositionBias(*args, bidirectional=True)
        self.decoder_bias = RelativePositionBias(*args, bidirectional=False)
        self.encoder_norm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.decoder_norm = nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self._init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.shared.weight

    @torch.no_grad()
    def _init_weights(self) -> None:
        """T5's scheme: std 1/sqrt(fan-in), with the 1/sqrt(head_dim) of attention folded into the query."""
        cfg = self.config
        nn.init.normal_(self.shared.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=cfg.n_embd**-0.5)
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                nn.init.normal_(module.q.weight, std=(cfg.n_embd * cfg.head_dim) ** -0.5)
                nn.init.normal_(module.k.weight, std=cfg.n_embd**-0.5)
                nn.init.normal_(module.v.weight, std=cfg.n_embd**-0.5)
                nn.init.normal_(module.o.weight, std=(cfg.n_head * cfg.head_dim) ** -0.5)
            elif isinstance(module, MLP):
                for linear in (module.up, module.gate):
                    if linear is not None:
                        nn.init.normal_(linear.weight, std=cfg.n_embd**-0.5)
                nn.init.normal_(module.down.weight, std=cfg.intermediate_size**-0.5)
            elif isinstance(module, RelativePositionBias):
                nn.init.normal_(module.relative_attention_bias.weight, std=cfg.n_embd**-0.5)

    def _run(self, block: nn.Module, *args) -> torch.Tensor:
        if self.config.gradient_checkpointing and self.training:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output [B, S, n_embd]; padding keys (left or right) are masked out."""
        seq = input_ids.shape[1]
        x = self.drop(self.shared(input_ids))
        bias = self.encoder_bias(seq, seq)
        mask = key_padding_mask(attention_mask, seq)
        for block in self.encoder:
            x = self._run(block, x, mask, bias)
        return self.drop(self.encoder_norm(x))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """What a task reads a text through (classification pools it): the encoder output."""
        return self.encode(input_ids, attention_mask)

    def new_cache(self, memory: torch.Tensor, max_len: int, memory_mask: torch.Tensor | None = None) -> T5Cache:
        return T5Cache(self, memory, max_len, memory_mask)

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor | None,
        memory_mask: torch.Tensor | None = None,
        cache: T5Cache | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, vocab] for decoder tokens (right padding only: causal masking keeps it from leaking). With
        a cache, `memory` is not read again (its keys and values are in the cache)."""
        seq = decoder_input_ids.shape[1]
        start = cache.starts(seq) if cache is not None else 0
        x = self.drop(self.shared(decoder_input_ids))
        if isinstance(start, RowStarts):  # one token per row, each at its own position
            total = start.end
            bias = self.decoder_bias(seq, total, start.index)
            causal = (torch.arange(total, device=x.device) <= start.index[:, None])[:, None, None, :]
        else:
            total = start + seq
            bias = self.decoder_bias(seq, total, start)
            causal = torch.ones(seq, total, dtype=torch.bool, device=x.device).tril(diagonal=start)[None, None]
        cross_mask = key_padding_mask(memory_mask, seq)
        for i, block in enumerate(self.decoder):
            if cache is not None:
                x = block(x, causal, bias, None, cache.cross[i], cross_mask, cache.layers[i], start)
            else:
                x = self._run(block, x, causal, bias, memory, None, cross_mask)
        if cache is not None:
            cache.advance(seq)
        x = self.drop(self.decoder_norm(x))
        if self.config.tie_embeddings:
            x = x * self.config.n_embd**-0.5  # T5 rescales before a tied output projection
        return self.lm_head(x)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if decoder_input_ids is None:
            raise ValueError("T5 needs decoder_input_ids (the targets shifted right after the start token)")
        return self.decode(decoder_input_ids, self.encode(input_ids, attention_mask), attention_mask)
