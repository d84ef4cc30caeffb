"""GPT: a decoder-only transformer covering GPT-2-style and Llama-style models by configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmexp.models.choices import check_choices
from llmexp.models.layers import (
    MLP,
    Attention,
    LayerKVCache,
    RotaryEmbedding,
    RowBuffer,
    RowCache,
    RowStarts,
    init_weights,
    make_norm,
    scale_residual_projections,
    sinusoidal_table,
)


@dataclass
class GPTConfig:
    """Shape and flavour of a GPT. `vocab_size` is filled in from the tokenizer at build time."""

    vocab_size: int = 0
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None: same as n_head (MHA); fewer gives GQA, 1 gives MQA
    n_embd: int = 128
    max_seq_len: int = 256
    intermediate_size: int | None = None  # None: 4 * n_embd, or the Llama 8/3 rule for gated MLPs
    mlp: Literal["gelu", "gelu_exact", "relu", "swiglu", "geglu"] = "gelu"  # swiglu/geglu are gated (Llama, T5 v1.1)
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-5
    pos_emb: Literal["learned", "rope", "sinusoidal"] = "learned"
    rope_theta: float = 10000.0
    bias: bool = True
    dropout: float = 0.0
    tie_embeddings: bool = True
    init_std: float = 0.02
    gradient_checkpointing: bool = False

    family = "gpt"

    def __post_init__(self) -> None:
        check_choices(self)
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.intermediate_size is None:
            gated = self.mlp in ("swiglu", "geglu")
            self.intermediate_size = 256 * ((8 * self.n_embd // 3 + 255) // 256) if gated else 4 * self.n_embd
        if self.n_embd % self.n_head:
            raise ValueError(f"model.n_embd={self.n_embd} must be divisible by model.n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"model.n_head={self.n_head} must be divisible by model.n_kv_head={self.n_kv_head}")

    def to_dict(self) -> dict:
        return {"family": self.family, **asdict(self)}

    def build(self) -> GPT:
        if self.vocab_size <= 0:
            raise ValueError("GPTConfig.vocab_size must be set (it comes from the tokenizer)")
        return GPT(self)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count without building the model (used for FLOPs and memory estimates)."""
        d, hidden, kv = self.n_embd, self.intermediate_size, self.n_kv_head * (self.n_embd // self.n_head)
        bias = int(self.bias)
        attn = d * (d + 2 * kv) + bias * (d + 2 * kv) + d * d + bias * d
        gated = self.mlp in ("swiglu", "geglu")
        mlp = (3 if gated else 2) * d * hidden + bias * ((2 if gated else 1) * hidden + d)
        norms = 2 * d * (1 + (bias if self.norm == "layernorm" else 0))
        total = self.n_layer * (attn + mlp + norms) + d * (1 + (bias if self.norm == "layernorm" else 0))
        if not non_embedding:
            total += self.vocab_size * d * (1 if self.tie_embeddings else 2)
            total += self.max_seq_len * d if self.pos_emb == "learned" else 0
        elif not self.tie_embeddings:
            total += self.vocab_size * d  # an untied output head is compute, not a lookup
        return total

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6 per weight touched (forward + backward) plus attention scores (PaLM, app. B)."""
        head_matmuls = 6 * self.vocab_size * self.n_embd if self.tie_embeddings else 0
        return 6 * self.num_params(non_embedding=True) + head_matmuls + 12 * self.n_layer * self.n_embd * seq_len


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.norm1 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.attn = Attention(cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.bias, cfg.dropout)
        self.norm2 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.mlp = MLP(cfg.n_embd, cfg.intermediate_size, cfg.mlp, cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, rope=None, mask=None, cache=None, cache_start=0):
        x = x + self.dropout(self.attn(self.norm1(x), rope, mask, cache, cache_start))
        return x + self.dropout(self.mlp(self.norm2(x)))


class KVCache(RowCache):
    """Per-layer keys/values plus which cached columns hold real tokens (left padding does not); owned by one
    generation call or one server's running batch."""

    def __init__(self, cfg: GPTConfig, batch: int, max_len: int, device, dtype):
        head_dim = cfg.n_embd // cfg.n_head
        layers = [LayerKVCache(batch, cfg.n_kv_head, max_len, head_dim, device, dtype) for _ in range(cfg.n_layer)]
        super().__init__(layers, batch)
        self.real = RowBuffer(torch.zeros(batch, max_len, dtype=torch.bool, device=device), dim=1)

    @property
    def valid(self) -> torch.Tensor:
        return self.real.data

    def row_buffers(self) -> list[RowBuffer]:
        return [*super().row_buffers(), self.real]


class GPT(nn.Module):
    """Token ids -> next-token logits. Knows nothing of training loops."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.max_seq_len, config.n_embd) if config.pos_emb == "learned" else None
        head_dim = config.n_embd // config.n_head
        self.rope = (
            RotaryEmbedding(head_dim, config.max_seq_len, config.rope_theta) if config.pos_emb == "rope" else None
        )
        if config.pos_emb == "sinusoidal":
            self.register_buffer("sin_table", sinusoidal_table(config.max_seq_len, config.n_embd), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(lambda m: init_weights(m, config.init_std))
        scale_residual_projections(self, config.init_std, config.n_layer)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        param = self.wte.weight
        return KVCache(self.config, batch, max_len or self.config.max_seq_len, param.device, param.dtype)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, vocab]; see `hidden_states` for the inputs."""
        return self.lm_head(self.hidden_states(input_ids, attention_mask, position_ids, cache, segment_ids))

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final normalised hidden states [B, T, n_embd].

        `attention_mask` [B, T] marks real tokens (1) and padding (0). `segment_ids` [B, T] packs several documents
        into one row: a token attends only to earlier tokens of its own segment, and positions restart at each
        segment (as if every document were alone). With a `cache`, the new tokens follow each row's cached ones.
        """
        batch, seq = input_ids.shape
        start = cache.starts(seq) if cache is not None else 0
        end = start.end if isinstance(start, RowStarts) else start + seq
        if end > self.config.max_seq_len:
            raise ValueError(f"sequence of {end} tokens exceeds the model's max_seq_len {self.config.max_seq_len}")
        if segment_ids is not None:
            if cache is not None or attention_mask is not None:
                raise ValueError("segment_ids (packed rows) go without a cache and without an attention_mask")
            mask = segment_mask(segment_ids)
            position_ids = segment_positions(segment_ids) if position_ids is None else position_ids
        else:
            if position_ids is None:
                position_ids = self._position_ids(batch, seq, start, attention_mask, cache, input_ids.device)
            mask = self._attention_mask(seq, start, attention_mask, cache, input_ids.device)
        x = self.wte(input_ids)
        if self.wpe is not None:
            x = x + self.wpe(position_ids)
        elif self.config.pos_emb == "sinusoidal":
            x = x + self.sin_table[position_ids]
        x = self.drop(x)
        rope = self.rope(position_ids) if self.rope is not None else None
        for i, block in enumerate(self.blocks):
            layer_cache = cache.layers[i] if cache is not None else None
            if self.config.gradient_checkpointing and self.training:
                x = checkpoint(block, x, rope, mask, use_reentrant=False)
            else:
                x = block(x, rope, mask, layer_cache, start)
        if cache is not None:
            cache.advance(seq)
        return self.norm_f(x)

    @staticmethod
    def _position_ids(batch, seq, start, attention_mask, cache, device) -> torch.Tensor:
        """Positions count real tokens only, so a left-padded prompt starts at position 0."""
        if isinstance(start, RowStarts):  # one token per row, after each row's own cached tokens
            return cache.valid[:, : start.end].sum(dim=1, keepdim=True)
        if attention_mask is None and (cache is None or bool(cache.valid[:, :start].all())):
            return torch.arange(start, start + seq, device=device).expand(batch, seq)
        new_valid = attention_mask.bool() if attention_mask is not None else torch.ones(batch, seq, device=device)
        previous = cache.valid[:, :start].sum(dim=1, keepdim=True) if cache is not None else 0
        return (previous + new_valid.long().cumsum(dim=1) - 1).clamp(min=0)

    @staticmethod
    def _attention_mask(seq, start, attention_mask, cache, device) -> torch.Tensor | None:
        """None for the plain causal case (fast SDPA path); else a boolean [B, 1, T, start + T] mask."""
        if isinstance(start, RowStarts):  # every cached column of its own row, the new token included
            if attention_mask is not None:
                raise ValueError("rows of different lengths take one real token each, without an attention_mask")
            cache.valid[torch.arange(len(start.index), device=device), start.index] = True
            return cache.valid[:, None, None, : start.end]
        if cache is not None:
            cache.valid[:, start : start + seq] = True if attention_mask is None else attention_mask.bool()
        if attention_mask is None and (cache is None or (seq == 1 and bool(cache.valid[:, :start].all()))):
            return None
        total = start + seq
        causal = torch.ones(seq, total, dtype=torch.bool, device=device).tril(diagonal=start)
        keys_valid = cache.valid[:, :total] if cache is not None else attention_mask.bool()
        mask = causal.unsqueeze(0) & keys_valid[:, None, :]
        # A padding query would attend to nothing and give NaN; let it see itself (its output is never used).
        itself = torch.arange(total, device=device) == torch.arange(start, total, device=device)[:, None]
        mask = mask | itself.unsqueeze(0)
        return mask.unsqueeze(1)


def segment_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, T, T]: causal, and only within a token's own segment."""
    seq = segment_ids.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=segment_ids.device).tril()
    return ((segment_ids[:, :, None] == segment_ids[:, None, :]) & causal).unsqueeze(1)


def segment_positions(segment_ids: torch.Tensor) -> torch.Tensor:
    """Positions that restart at 0 where a new segment begins."""
    index = torch.arange(segment_ids.shape[1], device=segment_ids.device).expand_as(segment_ids)
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - first
