"""Kronos inference with fused projections: window passes and one-token cached steps.

`FusedKronos` reads a `Kronos` model's weights once into projections laid out for one kernel
and dtype, fusing those that read the same input (q|k|v, w1|w3, the dependency layer's k|v),
and runs the two passes decoding needs with few small ops:

- `window`: T tokens at positions 0…T-1, causal (a prefill, or the reference's recompute of a
  sliding window), optionally filling a `DecoderCache`;
- `step`: one token per row at its position, attending to the cache.

They compute the functions of `Kronos.hidden_states` and the last position of
`Kronos.decode_s2` (float rounding aside: fused GEMMs may round differently) and leave the model
itself untouched. Every tensor argument may be a device tensor, and `step` syncs nothing with the
host, so it can be captured in a CUDA graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from kronos_integration.model.kernels import Projection, fused
from kronos_integration.model.kronos import Kronos
from kronos_integration.model.module import (
    Linear,
    RMSNorm,
    RotaryPositionalEmbedding,
    TransformerBlock,
    attend_after_shared,
    rotate_half,
)


@dataclass
class DecoderCache:
    """Per-call keys and values: self-attention (B, H, C, D) per layer, and the dependency
    layer's projections of the hidden states (B, Hd, C, Dd), in `FusedKronos.cache_dtype`."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    dep_keys: torch.Tensor
    dep_values: torch.Tensor

    def repeat_rows(self, repeats: int | torch.Tensor) -> None:
        """Repeat each row `repeats` times (or `repeats[r]` times: int64 (B,)), in place."""
        self.keys = [k.repeat_interleave(repeats, dim=0) for k in self.keys]
        self.values = [v.repeat_interleave(repeats, dim=0) for v in self.values]
        self.dep_keys = self.dep_keys.repeat_interleave(repeats, dim=0)
        self.dep_values = self.dep_values.repeat_interleave(repeats, dim=0)

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep only the rows `index` (int64 (B',), on the cache's device), in place."""
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.dep_keys = self.dep_keys.index_select(0, index)
        self.dep_values = self.dep_values.index_select(0, index)

    def rows(self, start: int, stop: int) -> DecoderCache:
        """Rows start…stop-1 as views: writes go to this cache."""
        return DecoderCache(
            [k[start:stop] for k in self.keys],
            [v[start:stop] for v in self.values],
            self.dep_keys[start:stop],
            self.dep_values[start:stop],
        )


@dataclass(frozen=True)
class SharedPrefix:
    """The first `length` cached positions where each series' `samples` consecutive rows hold
    the same keys and values (its history): per layer (N, H, length, D), and the dependency
    layer's (N, Hd, length, Dd). A step given it reads them once per series, not once per row
    (on the CPU most of a step's time goes to reading the cache)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    dep_keys: torch.Tensor
    dep_values: torch.Tensor
    samples: int

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2])

    @classmethod
    def of(cls, cache: DecoderCache, length: int, samples: int) -> SharedPrefix:
        """Copies of a per-series cache's first `length` positions (before `repeat_rows`)."""
        return cls(
            [k[:, :, :length].contiguous() for k in cache.keys],
            [v[:, :, :length].contiguous() for v in cache.values],
            cache.dep_keys[:, :, :length].contiguous(),
            cache.dep_values[:, :, :length].contiguous(),
            samples,
        )

    def select_series(self, index: torch.Tensor) -> SharedPrefix:
        """Only the series `index` (int64, on the prefix's device)."""
        return SharedPrefix(
            [k.index_select(0, index) for k in self.keys],
            [v.index_select(0, index) for v in self.values],
            self.dep_keys.index_select(0, index),
            self.dep_values.index_select(0, index),
            self.samples,
        )


@dataclass(frozen=True)
class _Layer:
    norm1: torch.Tensor
    qkv: Projection
    out: Projection
    norm2: torch.Tensor
    w13: Projection
    w2: Projection
    rotary: int  # index into FusedKronos.rotaries


def _norm_weight(norm: RMSNorm, dtype: torch.dtype) -> torch.Tensor:
    return norm.weight.detach().to(dtype)


def _projection(layer: Linear, kernel: str, dtype: torch.dtype) -> Projection:
    return fused([layer], kernel, dtype)


class FusedKronos:
    """A `Kronos` model's inference passes with fused projections for one kernel and dtype.

    Holds a second copy of the weights (in `dtype`, in the kernel's layout); the time embedding
    runs on the model's own module. Stateless between calls: one instance serves many threads.
    """

    def __init__(self, model: Kronos, kernel: str = "default", dtype: torch.dtype | None = None):
        param = model.embedding.fusion_proj.weight
        self.dtype = dtype = dtype or param.dtype
        self.device = param.device
        # The CPU multiplies bfloat16/float16 matrices by converting them to float32 first:
        # for the cache that would mean every key and value at every step, so the CPU caches
        # (and attends) in float32 whatever the dtype.
        self.cache_dtype = torch.float32 if self.device.type == "cpu" else dtype
        self.kernel = kernel
        self.d_model = model.d_model
        self.n_heads = model.n_heads
        self.head_dim = model.d_model // model.n_heads
        self.time_emb = model.time_emb
        self.eps = model.norm.eps
        self.emb_scale = math.sqrt(model.d_model)
        self.emb_s1 = model.embedding.emb_s1.weight.detach().to(dtype)
        self.emb_s2 = model.embedding.emb_s2.weight.detach().to(dtype)
        self.fusion = _projection(model.embedding.fusion_proj, kernel, dtype)
        self.rotaries: list[RotaryPositionalEmbedding] = []
        self.layers = []
        for block in cast(list[TransformerBlock], list(model.transformer)):
            attn, ffn = block.self_attn, block.ffn
            self.ff_dim = ffn.w1.out_features
            self.layers.append(
                _Layer(
                    norm1=_norm_weight(block.norm1, dtype),
                    qkv=fused([attn.q_proj, attn.k_proj, attn.v_proj], kernel, dtype),
                    out=_projection(attn.out_proj, kernel, dtype),
                    norm2=_norm_weight(block.norm2, dtype),
                    w13=fused([ffn.w1, ffn.w3], kernel, dtype),
                    w2=_projection(ffn.w2, kernel, dtype),
                    rotary=self._rotary_index(attn.rotary),
                )
            )
        self.norm = _norm_weight(model.norm, dtype)
        self.head_s1 = _projection(model.head.proj_s1, kernel, dtype)
        cross = model.cross_attn
        self.dep_heads = cross.n_heads
        self.dep_head_dim = cross.head_dim
        self.dep_q = _projection(cross.q_proj, kernel, dtype)
        self.dep_kv = fused([cross.k_proj, cross.v_proj], kernel, dtype)
        self.dep_out = _projection(cross.out_proj, kernel, dtype)
        self.dep_norm = _norm_weight(model.dep_layer.norm, dtype)
        self.head_s2 = _projection(model.head.proj_s2, kernel, dtype)

    def _rotary_index(self, rotary: RotaryPositionalEmbedding) -> int:
        """Layers share rotary tables when their `inv_freq` buffers are equal (as published)."""
        for index, known in enumerate(self.rotaries):
            if torch.equal(known.inv_freq, rotary.inv_freq):
                return index
        self.rotaries.append(rotary)
        return len(self.rotaries) - 1

    # ------------------------------------------------------------------ inputs
    def new_cache(self, batch: int, capacity: int) -> DecoderCache:
        """An empty cache for `batch` rows of up to `capacity` tokens."""

        def zeros(heads: int, head_dim: int) -> torch.Tensor:
            # Zeros, not empty: a masked-out slot must hold a finite value (0 * NaN is NaN).
            shape = (batch, heads, capacity, head_dim)
            return torch.zeros(shape, device=self.device, dtype=self.cache_dtype)

        return DecoderCache(
            [zeros(self.n_heads, self.head_dim) for _ in self.layers],
            [zeros(self.n_heads, self.head_dim) for _ in self.layers],
            zeros(self.dep_heads, self.dep_head_dim),
            zeros(self.dep_heads, self.dep_head_dim),
        )

    def rotary_tables(self, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(cos, sin), each (length, head_dim) in `dtype`, of positions 0…length-1, per
        distinct rotary embedding."""
        tables = []
        for rotary in self.rotaries:
            cos, sin = rotary.cos_sin(torch.arange(length, device=rotary.inv_freq.device))
            tables.append((cos.to(self.dtype), sin.to(self.dtype)))
        return tables

    def time_embedding(self, stamps: torch.Tensor) -> torch.Tensor:
        """stamps (B, T, 5) -> (B, T, d) in `dtype`, by the model's own time embedding."""
        return self.time_emb(stamps).to(self.dtype)

    def embed(self, s1: torch.Tensor, s2: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """Token ids (...) and their time embedding (..., d) -> model input (..., d)."""
        scale = self.emb_scale
        tokens = torch.cat(
            (F.embedding(s1, self.emb_s1) * scale, F.embedding(s2, self.emb_s2) * scale), -1
        )
        return self.fusion(tokens) + time

    # ------------------------------------------------------------------ passes
    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.d_model,), weight, self.eps)

    def _ffn(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        hidden = layer.w13(self._rms(x, layer.norm2))
        return x + layer.w2(F.silu(hidden[..., : self.ff_dim]) * hidden[..., self.ff_dim :])

    def window(
        self,
        x: torch.Tensor,
        cache: DecoderCache | None = None,
        checkpoint: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """x (B, T, d) at positions 0…T-1 -> final normed hidden states (B, T, d), causal.

        With `cache`, every layer's keys and values fill its positions 0…T-1, and the
        dependency layer's projections of the result too. `checkpoint(layer)` runs after each
        layer (the caller's deadline check).
        """
        batch, length, _ = x.shape
        tables = self.rotary_tables(length)
        heads, head_dim = self.n_heads, self.head_dim
        for index, layer in enumerate(self.layers):
            qkv = layer.qkv(self._rms(x, layer.norm1)).view(batch, length, 3, heads, head_dim)
            cos, sin = (t.view(length, 1, 1, head_dim) for t in tables[layer.rotary])
            qk = qkv[:, :, :2]
            qk = qk * cos + rotate_half(qk) * sin  # (B, T, 2, H, D)
            q, k = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2)  # (B, H, T, D)
            v = qkv[:, :, 2].transpose(1, 2)
            if cache is not None:
                cache.keys[index][:, :, :length] = k
                cache.values[index][:, :, :length] = v
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + layer.out(attended.transpose(1, 2).reshape(batch, length, self.d_model))
            x = self._ffn(layer, x)
            if checkpoint is not None:
                checkpoint(index)
        hidden = self._rms(x, self.norm)
        if cache is not None:
            keys, values = self.dep_memory(hidden)
            cache.dep_keys[:, :, :length] = keys
            cache.dep_values[:, :, :length] = values
        return hidden

    def step(
        self,
        x: torch.Tensor,
        cache: DecoderCache,
        at: torch.Tensor,
        key_len: int,
        key_mask: torch.Tensor | None,
        rotary: list[tuple[torch.Tensor, torch.Tensor]],
        prefix: SharedPrefix | None = None,
    ) -> torch.Tensor:
        """One token per row: x (B, d) at positions `at` -> final normed hidden states (B, d).

        `at` is (1,) when every row is at the same position, else (B,). Each layer's key and
        value (and the dependency layer's projections) are written at `at`; the token attends
        to the first `key_len` cached positions, restricted by `key_mask` (B or 1, 1, 1,
        key_len) when given. `rotary`: (cos, sin) of `at`, each (1 or B, head_dim), per
        rotary embedding (rows of `rotary_tables`). With `prefix` (rows at one position, no
        mask) the first `prefix.length` keys are read from it, once per series.
        """
        batch = x.shape[0]
        heads, head_dim = self.n_heads, self.head_dim
        shared = at.shape[0] == 1
        rows = None if shared else torch.arange(batch, device=x.device)
        for index, layer in enumerate(self.layers):
            qkv = layer.qkv(self._rms(x, layer.norm1)).view(batch, 3, heads, head_dim)
            cos, sin = (t.view(-1, 1, 1, head_dim) for t in rotary[layer.rotary])
            qk = qkv[:, :2]
            qk = qk * cos + rotate_half(qk) * sin  # (B, 2, H, D)
            _write(cache.keys[index], at, rows, qk[:, 1])
            _write(cache.values[index], at, rows, qkv[:, 2])
            query = qk[:, 0].unsqueeze(2).to(self.cache_dtype)
            if prefix is None:
                attended = _attend_one(
                    query,
                    cache.keys[index][:, :, :key_len],
                    cache.values[index][:, :, :key_len],
                    key_mask,
                )  # (B, H, 1, D)
            else:
                own = slice(prefix.length, key_len)
                attended = attend_after_shared(
                    query,
                    cache.keys[index][:, :, own],
                    cache.values[index][:, :, own],
                    (prefix.keys[index], prefix.values[index], prefix.samples),
                    causal=False,
                )
            x = x + layer.out(attended.reshape(batch, self.d_model).to(self.dtype))
            x = self._ffn(layer, x)
        hidden = self._rms(x, self.norm)
        kv = self.dep_kv(hidden).view(batch, 2, self.dep_heads, self.dep_head_dim)
        _write(cache.dep_keys, at, rows, kv[:, 0])
        _write(cache.dep_values, at, rows, kv[:, 1])
        return hidden

    # ------------------------------------------------------------------ heads
    def dep_memory(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The dependency layer's keys and values of hidden (B, T, d): each (B, Hd, T, Dd),
        in `cache_dtype`."""
        batch, length, _ = hidden.shape
        kv = self.dep_kv(hidden).to(self.cache_dtype)
        kv = kv.view(batch, length, 2, self.dep_heads, self.dep_head_dim)
        return kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)

    def s1_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, d) -> float32 s1 logits (B, 2^s1_bits)."""
        return self.head_s1(hidden).float()

    def s2_logits(
        self,
        hidden: torch.Tensor,
        s1_ids: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        prefix: SharedPrefix | None = None,
    ) -> torch.Tensor:
        """The last position of `Kronos.decode_s2`: hidden (B, d), sampled s1 ids (B,), the
        dependency layer's keys/values (B, Hd, K, Dd) -> float32 s2 logits (B, 2^s2_bits).
        With `prefix` (no mask), `keys`/`values` are the positions after it."""
        batch = hidden.shape[0]
        query = self.dep_q(F.embedding(s1_ids, self.emb_s1))
        query = query.view(batch, self.dep_heads, 1, self.dep_head_dim).to(keys.dtype)
        if prefix is None:
            attended = _attend_one(query, keys, values, key_mask)
        else:
            shared = (prefix.dep_keys, prefix.dep_values, prefix.samples)
            attended = attend_after_shared(query, keys, values, shared, causal=False)
        attended = self.dep_out(attended.reshape(batch, self.d_model).to(self.dtype))
        return self.head_s2(self._rms(hidden + attended, self.dep_norm)).float()


def _write(
    cache: torch.Tensor, at: torch.Tensor, rows: torch.Tensor | None, value: torch.Tensor
) -> None:
    """cache (B, H, C, D) gains value (B, H, D) at position `at` (1,) or per row `at` (B,)."""
    value = value.to(cache.dtype)
    if rows is None:
        cache.index_copy_(2, at, value.unsqueeze(2))
    else:
        cache[rows, :, at] = value


def _attend_one(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, key_mask: torch.Tensor | None
) -> torch.Tensor:
    """Attention of one query per row: query (B, H, 1, D) over keys/values (B, H, K, D) ->
    (B, H, 1, D); `key_mask` (B or 1, 1, 1, K) True where a key may be attended.

    Two matrix products and a softmax: for a single query this reads the keys and values
    once and runs several times faster on the CPU than the fused attention kernel, which is
    built for long queries (measured in a decoding step of Kronos-small: 0.8 vs 2.9 ms).
    """
    scores = torch.matmul(query * (query.shape[-1] ** -0.5), keys.transpose(-1, -2))
    if key_mask is not None:
        scores = scores.masked_fill(key_mask.logical_not(), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), values)
