"""Building blocks shared by every model family: norms, rotary positions, attention with a KV cache, MLPs."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def make_norm(kind: str, dim: int, eps: float, bias: bool) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {kind!r}")


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE): cos/sin tables computed once, indexed by position ids."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        # Not saved in checkpoints: they are a pure function of the config.
        self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()], dim=-1), persistent=False)
        self.register_buffer("sin", torch.cat([angles.sin(), angles.sin()], dim=-1), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) of shape [B, 1, T, head_dim] for broadcasting over heads."""
        return self.cos[position_ids].unsqueeze(1), self.sin[position_ids].unsqueeze(1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class RowStarts(NamedTuple):
    """Where a one-token step of rows with different lengths writes: column `index[b]` of row b. Keys are read up to
    column `end` (one past the longest row)."""

    index: torch.Tensor
    end: int


class RowBuffer:
    """A per-row tensor [rows, ...] of a running batch that rows leave and join without copying the rows that stay:
    the storage keeps spare rows (doubling when full), a row that leaves is overwritten by one moved from the end
    (`RunningBatch` orders them so), and joining rows are copied into the spare rows. Along `dim` (the length),
    rows shorter than the storage are zero-padded."""

    def __init__(self, tensor: torch.Tensor, dim: int):
        self.storage, self.rows, self.dim = tensor, tensor.shape[0], dim

    @property
    def data(self) -> torch.Tensor:
        """The live rows (a view: writes reach the storage)."""
        return self.storage[: self.rows]

    def keep(self, rows: list[int]) -> None:
        """Keep these rows, in this order; only the rows that change place are copied."""
        moved = [(to, row) for to, row in enumerate(rows) if to != row]
        if moved:
            to, source = (torch.tensor(side, device=self.storage.device) for side in zip(*moved, strict=True))
            self.storage[to] = self.storage[source]
        self.rows = len(rows)

    def extend(self, other: torch.Tensor) -> None:
        """Append the rows of `other`."""
        count, width, theirs = self.rows + other.shape[0], self.storage.shape[self.dim], other.shape[self.dim]
        if count > self.storage.shape[0] or theirs > width:
            shape = list(self.storage.shape)
            shape[0], shape[self.dim] = max(count, 2 * self.rows), max(width, theirs)
            storage = self.storage.new_zeros(shape)
            storage[: self.rows].narrow(self.dim, 0, width).copy_(self.data)
            self.storage, width = storage, shape[self.dim]
        joining = self.storage[self.rows : count]
        joining.narrow(self.dim, 0, theirs).copy_(other)
        joining.narrow(self.dim, theirs, width - theirs).zero_()
        self.rows = count


class LayerKVCache:
    """Keys and values of one attention layer for positions already seen, preallocated to the maximum length."""

    def __init__(self, batch: int, n_kv_head: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, n_kv_head, max_len, head_dim)
        self.keys = RowBuffer(torch.zeros(shape, device=device, dtype=dtype), dim=2)
        self.values = RowBuffer(torch.zeros(shape, device=device, dtype=dtype), dim=2)

    @property
    def k(self) -> torch.Tensor:
        return self.keys.data

    @property
    def v(self) -> torch.Tensor:
        return self.values.data

    def update(self, k: torch.Tensor, v: torch.Tensor, start: int | RowStarts) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.k, self.v
        if isinstance(start, RowStarts):  # one new token per row, each at its own column
            rows = torch.arange(k.shape[0], device=k.device)
            keys[rows, :, start.index] = k[:, :, 0]
            values[rows, :, start.index] = v[:, :, 0]
            return keys[:, :, : start.end], values[:, :, : start.end]
        end = start + k.shape[2]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]

    def row_buffers(self) -> list[RowBuffer]:
        return [self.keys, self.values]


class RowCache:
    """The KV cache of a batch of rows that join and leave between decoding steps (a server's running batch).
    Rows that joined together share a length; rows of different lengths write each new token at their own column
    (`starts` gives a `RowStarts`), so a row never waits for, or is padded to, another. `keep` drops rows, `extend`
    appends the rows of another cache (their prompts read into it); both copy only the rows they move
    (`RowBuffer`)."""

    def __init__(self, layers: list[LayerKVCache], batch: int):
        self.layers, self.lengths = layers, [0] * batch

    def starts(self, seq: int) -> int | RowStarts:
        """Where the next `seq` tokens of every row go: one column when all rows have the same length."""
        if len(set(self.lengths)) <= 1:
            return self.lengths[0] if self.lengths else 0
        if seq != 1:
            raise ValueError("rows of different lengths take one token per step")
        index = torch.tensor(self.lengths, device=self.layers[0].k.device)
        return RowStarts(index, max(self.lengths) + 1)

    def advance(self, seq: int) -> None:
        self.lengths = [length + seq for length in self.lengths]

    def row_buffers(self) -> list[RowBuffer]:
        """Every per-row tensor (a model's cache adds what it holds beyond keys and values)."""
        return [buffer for layer in self.layers for buffer in layer.row_buffers()]

    def keep(self, rows: list[int]) -> None:
        """Keep these rows, in this order."""
        for buffer in self.row_buffers():
            buffer.keep(rows)
        self.lengths = [self.lengths[i] for i in rows]

    def extend(self, other: RowCache) -> None:
        """Append the rows of `other` (a cache of the same model)."""
        for mine, theirs in zip(self.row_buffers(), other.row_buffers(), strict=True):
            mine.extend(theirs.data)
        self.lengths = self.lengths + other.lengths


class Attention(nn.Module):
    """Multi-head attention through `scaled_dot_product_attention`; n_kv_head < n_head gives GQA (1 gives MQA)."""

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int, bias: bool, dropout: float):
        super().__init__()
        if n_embd % n_head or n_head % n_kv_head:
            raise ValueError(f"n_embd={n_embd} must divide by n_head={n_head}, and n_head by n_kv_head={n_kv_head}")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, n_embd // n_head
        self.qkv = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * self.head_dim, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        cache: LayerKVCache | None = None,
        cache_start: int | RowStarts = 0,
    ) -> torch.Tensor:
        batch, seq, _ = x.shape
        q, k, v = self.qkv(x).split(
            [self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim], dim=-1
        )
        q = q.view(batch, seq, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(batch, seq, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(batch, seq, self.n_kv_head, self.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.update(k, v, cache_start)
        # Without a mask the causal flag lets SDPA pick its flash/memory-efficient kernels.
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and cache is None,
            enable_gqa=self.n_kv_head != self.n_head,
        )
        return self.proj(y.transpose(1, 2).reshape(batch, seq, -1))


# name -> (activation, gated). "gelu" is GPT-2's tanh approximation; "gelu_exact" is BERT's erf form.
MLP_KINDS = {
    "gelu": (lambda x: F.gelu(x, approximate="tanh"), False),
    "gelu_exact": (F.gelu, False),
    "relu": (F.relu, False),
    "swiglu": (F.silu, True),
    "geglu": (lambda x: F.gelu(x, approximate="tanh"), True),
}


class MLP(nn.Module):
    """Feed-forward block: GELU (GPT-2, BERT), ReLU (T5), or gated SwiGLU (Llama) / GeGLU (T5 v1.1)."""

    def __init__(self, n_embd: int, hidden: int, kind: str, bias: bool):
        super().__init__()
        if kind not in MLP_KINDS:
            raise ValueError(f"mlp must be one of {sorted(MLP_KINDS)}, got {kind!r}")
        self.kind = kind
        self.act, gated = MLP_KINDS[kind]
        self.up = nn.Linear(n_embd, hidden, bias=bias)
        self.gate = nn.Linear(n_embd, hidden, bias=bias) if gated else None
        self.down = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.down(self.act(self.gate(x)) * self.up(x))
        return self.down(self.act(self.up(x)))


class MultiHeadAttention(nn.Module):
    """Attention with separate q/k/v/o projections: bidirectional or causal self-attention, or cross-attention
    (keys/values from `memory`). An additive `bias` (T5's relative positions) and a boolean key mask may be given.

    `scale=None` is 1/sqrt(head_dim); T5 folds the scale into its weights and passes 1.0.
    """

    def __init__(self, n_embd: int, n_head: int, head_dim: int, bias: bool, dropout: float, scale: float | None = None):
        super().__init__()
        self.n_head, self.head_dim, self.scale, self.dropout = n_head, head_dim, scale, dropout
        inner = n_head * head_dim
        self.q = nn.Linear(n_embd, inner, bias=bias)
        self.k = nn.Linear(n_embd, inner, bias=bias)
        self.v = nn.Linear(n_embd, inner, bias=bias)
        self.o = nn.Linear(inner, n_embd, bias=bias)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.n_head, self.head_dim).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of `memory` (computed once per generation for cross-attention)."""
        return self.heads(self.k(memory)), self.heads(self.v(memory))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: LayerKVCache | None = None,
        cache_start: int | RowStarts = 0,
    ) -> torch.Tensor:
        """`mask` is boolean [B, 1, Tq, Tk] (True = may attend); `bias` is additive [B or 1, H, Tq, Tk]."""
        batch, seq, _ = x.shape
        q = self.heads(self.q(x))
        k, v = memory_kv if memory_kv is not None else self.project_kv(x)
        if cache is not None and memory_kv is None:
            k, v = cache.update(k, v, cache_start)
        attn_mask = bias
        if mask is not None:
            attn_mask = mask if bias is None else bias.masked_fill(~mask, float("-inf"))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )
        return self.o(y.transpose(1, 2).reshape(batch, seq, -1))


def sinusoidal_table(max_len: int, dim: int) -> torch.Tensor:
    """Fixed sin/cos position table of "Attention is all you need" ([max_len, dim]; sines in even columns)."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def key_padding_mask(attention_mask: torch.Tensor | None, n_queries: int) -> torch.Tensor | None:
    """[B, Tk] real-token mask -> boolean [B, 1, Tq, Tk] for SDPA (None stays None: nothing to hide)."""
    if attention_mask is None:
        return None
    return attention_mask.bool()[:, None, None, :].expand(-1, 1, n_queries, -1)


def positions_from_mask(attention_mask: torch.Tensor | None, batch: int, seq: int, device) -> torch.Tensor:
    """Positions that count real tokens only, so a left-padded sequence starts at position 0."""
    if attention_mask is None:
        return torch.arange(seq, device=device).expand(batch, seq)
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) for linear and embedding weights, zeros for biases (GPT-2's scheme)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)


def scale_residual_projections(model: nn.Module, std: float, n_layer: int) -> None:
    """Residual output projections get std / sqrt(2 * n_layer) so the residual stream's variance stays put."""
    scaled = std / math.sqrt(2 * n_layer)
    for name, param in model.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.down.weight")):
            nn.init.normal_(param, mean=0.0, std=scaled)


class RelativePositionBias(nn.Module):
    """T5's learned bias per (head, bucketed query-key distance), added to attention scores of every layer."""

    def __init__(self, n_head: int, num_buckets: int, max_distance: int, bidirectional: bool):
        super().__init__()
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional
        self.relative_attention_bias = nn.Embedding(num_buckets, n_head)

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        """Exact buckets for small distances, log-spaced ones up to max_distance (as in T5)."""
        num_buckets, buckets = self.num_buckets, torch.zeros_like(relative)
        if self.bidirectional:
            num_buckets //= 2
            buckets = buckets + (relative > 0).long() * num_buckets
            relative = relative.abs()
        else:
            relative = -torch.clamp(relative, max=0)
        max_exact = num_buckets // 2
        large = (
            max_exact
            + (
                torch.log(relative.float().clamp(min=1) / max_exact)
                / math.log(self.max_distance / max_exact)
                * (num_buckets - max_exact)
            ).long()
        )
        large = large.clamp(max=num_buckets - 1)
        return buckets + torch.where(relative < max_exact, relative, large)

    def forward(self, q_len: int, k_len: int, q_start: int | torch.Tensor = 0) -> torch.Tensor:
        """Additive bias [1, H, q_len, k_len] for queries at positions q_start.. and keys at 0..k_len-1; with one
        start per row (a [B] tensor), [B, H, q_len, k_len]."""
        device = self.relative_attention_bias.weight.device
        start = torch.as_tensor(q_start, device=device).reshape(-1, 1, 1)
        query = start + torch.arange(q_len, device=device)[None, :, None]
        key = torch.arange(k_len, device=device)[None, None, :]
        values = self.relative_attention_bias(self.bucket(key - query))
        return values.permute(0, 3, 1, 2)
