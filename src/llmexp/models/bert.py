"""BERT: a bidirectional post-norm encoder with token types and a masked-LM head (BertForMaskedLM's shape)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmexp.models.layers import (
    MLP,
    MultiHeadAttention,
    init_weights,
    key_padding_mask,
    positions_from_mask,
)


@dataclass
class BertConfig:
    """Shape of a BERT. `vocab_size` is filled in from the tokenizer at build time."""

    vocab_size: int = 0
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    intermediate_size: int | None = None  # None: 4 * n_embd
    max_seq_len: int = 512
    type_vocab_size: int = 2
    norm_eps: float = 1e-12
    dropout: float = 0.1
    pad_token_id: int = 0
    init_std: float = 0.02
    gradient_checkpointing: bool = False

    family = "bert"

    def __post_init__(self) -> None:
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.n_embd
        if self.n_embd % self.n_head:
            raise ValueError(f"model.n_embd={self.n_embd} must be divisible by model.n_head={self.n_head}")

    def to_dict(self) -> dict:
        return {"family": self.family, **asdict(self)}

    def build(self) -> Bert:
        if self.vocab_size <= 0:
            raise ValueError("BertConfig.vocab_size must be set (it comes from the tokenizer)")
        return Bert(self)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count without building the model. `non_embedding` leaves out the lookup tables (token,
        position, token type; the tied output head with them): their matmul is counted in FLOPs separately."""
        d, hidden = self.n_embd, self.intermediate_size
        layer = 4 * (d * d + d) + (d * hidden + hidden) + (hidden * d + d) + 2 * 2 * d
        total = self.n_layer * layer + 2 * d + (d * d + d + 2 * d) + self.vocab_size  # + embedding norm, head, bias
        if not non_embedding:
            total += (self.vocab_size + self.max_seq_len + self.type_vocab_size) * d
        return total

    def flops_per_token(self, seq_len: int) -> int:
        """6 FLOPs per weight touched (forward + backward), the tied output head, and the attention scores (as GPT)."""
        head = 6 * self.vocab_size * self.n_embd
        return 6 * self.num_params(non_embedding=True) + head + 12 * self.n_layer * self.n_embd * seq_len


class BertLayer(nn.Module):
    """Post-norm block: norm(x + attn(x)), then norm(x + mlp(x))."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attn = MultiHeadAttention(cfg.n_embd, cfg.n_head, cfg.n_embd // cfg.n_head, True, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = MLP(cfg.n_embd, cfg.intermediate_size, "gelu_exact", True)
        self.norm2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, mask=mask)))
        return self.norm2(x + self.drop(self.mlp(x)))


class Bert(nn.Module):
    """Token ids -> masked-LM logits over the vocabulary (the output head is tied to the token embedding)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        d = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.max_seq_len, d)
        self.wtt = nn.Embedding(config.type_vocab_size, d)
        self.norm_emb = nn.LayerNorm(d, eps=config.norm_eps)
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layer))
        self.head_dense = nn.Linear(d, d)
        self.head_norm = nn.LayerNorm(d, eps=config.norm_eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=True)
        self.apply(lambda m: init_weights(m, config.init_std))
        self.lm_head.weight = self.wte.weight

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states [B, T, n_embd]. Positions count real tokens, so left padding changes nothing."""
        batch, seq = input_ids.shape
        if seq > self.config.max_seq_len:
            raise ValueError(f"sequence of {seq} tokens exceeds the model's max_seq_len {self.config.max_seq_len}")
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask, batch, seq, input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.wte(input_ids) + self.wpe(position_ids) + self.wtt(token_type_ids)
        x = self.drop(self.norm_emb(x))
        mask = key_padding_mask(attention_mask, seq)
        for layer in self.layers:
            if self.config.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return x

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """What a task reads a text through (classification pools it): the encoder output."""
        return self.encode(input_ids, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked-LM logits [B, T, vocab]; `attention_mask` [B, T] marks real tokens (1) and padding (0)."""
        x = self.encode(input_ids, attention_mask, token_type_ids, position_ids)
        x = self.head_norm(nn.functional.gelu(self.head_dense(x)))
        return self.lm_head(x)
