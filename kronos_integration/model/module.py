"""Building blocks of Kronos and its tokenizer, with the reference's `state_dict` names.

These modules compute the reference's functions (training and full-window inference); the
predictor's decoding passes are `decoder.FusedKronos`. Nothing here keeps per-call state on a
module: rotary tables are computed from the positions of each call, so one model can serve
several threads and follow `.to(device)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def onednn_available() -> bool:
    """Whether this torch build has the oneDNN linear kernels `Linear.pack_for_cpu` uses."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, same `state_dict`) that can run on oneDNN in CPU inference.

    `pack_for_cpu()` keeps a copy of the weight in oneDNN's blocked layout; while the module is
    in eval mode, on the CPU, in float32, and its weight is the one that was packed, `forward`
    uses oneDNN's kernel with it (results differ from the default kernel in float rounding only).
    Anything else (training, another device, weights changed since) runs `nn.Linear.forward`.
    """

    _packed: torch.Tensor | None = None
    _packed_from: tuple[int, int] = (0, -1)  # (data_ptr, version) of the packed weight

    def pack_for_cpu(self) -> None:
        """Pack the current float32 CPU weight for oneDNN (a second copy of the weight)."""
        weight = self.weight.detach()
        if weight.device.type != "cpu" or weight.dtype != torch.float32:
            raise ValueError("only a float32 CPU weight can be packed for oneDNN")
        self._packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
        self._packed_from = (weight.data_ptr(), weight._version)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed
        if (
            packed is not None
            and not self.training
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and (self.weight.data_ptr(), self.weight._version) == self._packed_from
        ):
            return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")
        return super().forward(x)


def pack_linear_layers_for_cpu(module: nn.Module) -> int:
    """`pack_for_cpu()` every `Linear` in `module`; returns how many were packed."""
    layers = [m for m in module.modules() if isinstance(m, Linear)]
    for layer in layers:
        layer.pack_for_cpu()
    return len(layers)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU feed-forward: `w2(silu(w1 x) * w3 x)`."""

    def __init__(self, d_model: int, ff_dim: int, ffn_dropout_p: float = 0.0) -> None:
        super().__init__()
        self.w1 = Linear(d_model, ff_dim, bias=False)
        self.w3 = Linear(d_model, ff_dim, bias=False)
        self.w2 = Linear(ff_dim, d_model, bias=False)
        self.ffn_dropout = nn.Dropout(ffn_dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """`[a, b] -> [-b, a]` over the halves of the last dimension."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryPositionalEmbedding(nn.Module):
    """Rotary position embedding; `inv_freq` is a persistent buffer as in the checkpoints."""

    inv_freq: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables for integer `positions` (...,): cos and sin, each (..., dim)."""
        angles = positions.to(self.inv_freq.dtype).unsqueeze(-1) * self.inv_freq  # (..., dim/2)
        emb = torch.cat((angles, angles), dim=-1)  # (..., dim)
        return emb.cos(), emb.sin()

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate q and k (B, H, T, D) by `positions`: (T,) shared, or (B, 1, T) per row."""
        cos, sin = self.cos_sin(positions)
        cos, sin = cos.type_as(q), sin.type_as(q)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate q and k (B, H, T, D) with positions 0…Tq-1, taken from the query length."""
        return self.rotate(q, k, torch.arange(q.shape[-2], device=q.device))


class _AttentionWithRoPE(nn.Module):
    """Projections shared by both attentions: `q_proj`, `k_proj`, `v_proj`, `out_proj` (with
    bias), a `rotary` embedding over the head dimension, and dropouts."""

    def __init__(
        self, d_model: int, n_heads: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = Linear(d_model, d_model)
        self.k_proj = Linear(d_model, d_model)
        self.v_proj = Linear(d_model, d_model)
        self.out_proj = Linear(d_model, d_model)
        self.rotary = RotaryPositionalEmbedding(self.head_dim)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, "b t (h d) -> b h t d", h=self.n_heads)

    def _output(self, attended: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) attention output -> (B, T, d_model) after `out_proj`."""
        return self.resid_dropout(self.out_proj(rearrange(attended, "b h t d -> b t (h d)")))


class MultiHeadAttentionWithRoPE(_AttentionWithRoPE):
    """Causal multi-head self-attention with rotary positions."""

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, d_model) -> q, k, v (B, H, T, D), not yet rotated."""
        return self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model), causal over positions 0…T-1."""
        q, k, v = self._qkv(x)  # (B, H, T, D)
        q, k = self.rotary(q, k)
        dropout_p = self.attn_dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        return self._output(out)

    def forward_shared(
        self, shared: torch.Tensor, own: torch.Tensor, samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` of windows made of each series' shared first P positions, shared (N, P,
        d_model), then each of its `samples` rows' own G positions, own (N·samples, G, d_model)
        series-major: (shared part (N, P, d_model), own part (N·samples, G, d_model)), the
        shared part computed once per series. Inference only (no dropout)."""
        length, own_length = shared.shape[1], own.shape[1]
        q, k, v = self._qkv(shared)
        q, k = self.rotary(q, k)
        out_shared = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        own_q, own_k, own_v = self._qkv(own)
        positions = torch.arange(length, length + own_length, device=own.device)
        own_q, own_k = self.rotary.rotate(own_q, own_k, positions)
        out_own = attend_after_shared(own_q, own_k, own_v, (k, v, samples), causal=True)
        return self._output(out_shared), self._output(out_own)


def attend_after_shared(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    shared: tuple[torch.Tensor, torch.Tensor, int],
    causal: bool,
) -> torch.Tensor:
    """Attention over each series' shared keys, then each row's own: query (B, H, G, D) of
    B = N × samples rows (series-major), own keys/values (B, H, K, D), shared (keys, values,
    samples) with keys/values (N, H, P, D) -> (B, H, G, D). `causal`: query g sees own keys
    0…g only (G == K); else all of them.

    The queries of a series' rows meet its shared keys in one product, so those are read once
    per series, not once per row; one softmax spans shared and own keys.
    """
    shared_keys, shared_values, samples = shared
    batch, heads, length, dim = query.shape
    series, prefix = batch // samples, shared_keys.shape[2]

    def by_series(x: torch.Tensor) -> torch.Tensor:  # (B, H, G, X) -> (N, H, S·G, X)
        grouped = x.reshape(series, samples, heads, length, -1).transpose(1, 2)
        return grouped.reshape(series, heads, samples * length, -1)

    def by_row(x: torch.Tensor) -> torch.Tensor:  # (N, H, S·G, X) -> (B, H, G, X)
        grouped = x.reshape(series, heads, samples, length, -1).transpose(1, 2)
        return grouped.reshape(batch, heads, length, -1)

    query = query * (dim**-0.5)
    scores_shared = by_row(torch.matmul(by_series(query), shared_keys.transpose(-1, -2)))
    scores_own = torch.matmul(query, keys.transpose(-1, -2))  # (B, H, G, K)
    if causal:
        later = torch.ones(length, length, dtype=torch.bool, device=query.device).triu(1)
        scores_own = scores_own.masked_fill(later, float("-inf"))
    weights = torch.softmax(torch.cat((scores_shared, scores_own), dim=-1), dim=-1)
    from_shared = by_row(torch.matmul(by_series(weights[..., :prefix]), shared_values))
    return from_shared + torch.matmul(weights[..., prefix:], values)


class MultiHeadCrossAttentionWithRoPE(_AttentionWithRoPE):
    """Cross-attention of queries over keys/values; causal only in training (as the reference)."""

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """query (B, Tq, d_model) over memory (B, Tk, d_model) -> (B, Tq, d_model).

        RoPE positions come from the query length and apply to q and k alike; a length-1 query
        (inference) sits at position 0, where the rotation is the identity, so it is skipped.
        """
        q = self._heads(self.q_proj(query))  # (B, H, Tq, D)
        keys, values = self._heads(self.k_proj(memory)), self._heads(self.v_proj(memory))
        if q.shape[-2] > 1:
            q, keys = self.rotary(q, keys)
        dropout_p = self.attn_dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(
            q, keys, values, dropout_p=dropout_p, is_causal=self.training
        )
        return self._output(out)


class TransformerBlock(nn.Module):
    """Pre-norm block: `x + attn(norm1(x))`, then `x + ffn(norm2(x))`."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float = 0.0,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = MultiHeadAttentionWithRoPE(
            d_model, n_heads, attn_dropout_p, resid_dropout_p
        )
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model)."""
        x = x + self.self_attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))

    def forward_shared(
        self, shared: torch.Tensor, own: torch.Tensor, samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` of windows of a shared part and each row's own part (see
        `MultiHeadAttentionWithRoPE.forward_shared`): (shared (N, P, d), own (N·samples, G, d))."""
        attended_shared, attended_own = self.self_attn.forward_shared(
            self.norm1(shared), self.norm1(own), samples
        )
        shared, own = shared + attended_shared, own + attended_own
        return shared + self.ffn(self.norm2(shared)), own + self.ffn(self.norm2(own))


class BinarySphericalQuantizer(nn.Module):
    """Inference state of the binary spherical quantiser: the checkpoint's bit-weight buffers."""

    basis: torch.Tensor
    group_basis: torch.Tensor

    def __init__(self, codebook_dim: int, group_size: int) -> None:
        super().__init__()
        self.codebook_dim = codebook_dim
        self.register_buffer("basis", 2 ** torch.arange(codebook_dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))


class BSQuantizer(nn.Module):
    """Maps latents to two halves of sign bits and back, as token ids."""

    def __init__(self, s1_bits: int, s2_bits: int, group_size: int) -> None:
        super().__init__()
        if s1_bits != s2_bits:
            raise ValueError(f"s1_bits ({s1_bits}) and s2_bits ({s2_bits}) must be equal")
        self.s1_bits = s1_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = BinarySphericalQuantizer(self.codebook_dim, group_size)

    def _bit_weights(self, width: int, device: torch.device) -> torch.Tensor:
        return 2 ** torch.arange(width, dtype=torch.long, device=device)  # little-endian

    def quantize_to_ids(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, T, C) -> (s1_ids, s2_ids), each (B, T) int64: the sign bits of each half."""
        z = F.normalize(z, dim=-1)
        bits = (z > 0).long()  # +1 -> 1, -1 -> 0; the 1/sqrt(C) scale keeps signs
        weights = self._bit_weights(self.s1_bits, z.device)
        s1 = (bits[..., : self.s1_bits] * weights).sum(-1)
        s2 = (bits[..., self.s1_bits :] * weights).sum(-1)
        return s1, s2

    def ids_to_codes(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) float codes ±1/sqrt(C), s1 bits first."""
        weights = self._bit_weights(self.s1_bits, s1_ids.device)
        bits = torch.cat(
            ((s1_ids.unsqueeze(-1) & weights) != 0, (s2_ids.unsqueeze(-1) & weights) != 0), dim=-1
        )
        return (bits.float() * 2 - 1) * (1.0 / math.sqrt(self.codebook_dim))


class HierarchicalEmbedding(nn.Module):
    """Token embedding: `fusion_proj(cat(emb_s1(s1)·√d, emb_s2(s2)·√d))`."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = Linear(2 * d_model, d_model)

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, d_model)."""
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(
            torch.cat((self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale), dim=-1)
        )


class FixedEmbedding(nn.Module):
    """Frozen sinusoidal table: row p = [sin(p f0), cos(p f0), sin(p f1), …]."""

    def __init__(self, num_embeddings: int, d_model: int) -> None:
        super().__init__()
        table = torch.zeros(num_embeddings, d_model)
        position = torch.arange(0, num_embeddings).float().unsqueeze(1)
        div_term = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term)
        self.emb = nn.Embedding(num_embeddings, d_model)
        self.emb.weight = nn.Parameter(table, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x).detach()


class TemporalEmbedding(nn.Module):
    """Sum of minute, hour, weekday, day-of-month and month embeddings of a (B, T, 5) stamp."""

    def __init__(self, d_model: int, learn_te: bool) -> None:
        super().__init__()
        embed: type[nn.Module] = nn.Embedding if learn_te else FixedEmbedding
        self.minute_embed = embed(60, d_model)
        self.hour_embed = embed(24, d_model)
        self.weekday_embed = embed(7, d_model)
        self.day_embed = embed(32, d_model)
        self.month_embed = embed(13, d_model)

    def forward(self, stamp: torch.Tensor) -> torch.Tensor:
        """stamp (B, T, 5): minute, hour, weekday (Mon=0), day, month -> (B, T, d_model)."""
        x = stamp.long()
        # Summation order as in the reference, so the float result is identical.
        return (
            self.hour_embed(x[:, :, 1])
            + self.weekday_embed(x[:, :, 2])
            + self.day_embed(x[:, :, 3])
            + self.month_embed(x[:, :, 4])
            + self.minute_embed(x[:, :, 0])
        )


class DependencyAwareLayer(nn.Module):
    """Conditions the s2 prediction on the sampled s1 token: `norm(h + cross_attn(emb_s1, h))`."""

    def __init__(self, d_model: int, n_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = MultiHeadCrossAttentionWithRoPE(d_model, n_heads, dropout, dropout)
        self.norm = RMSNorm(d_model)

    def forward(self, hidden: torch.Tensor, sibling_embed: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, d), sibling_embed (B, Tq, d) -> (B, T, d) (broadcast when Tq == 1)."""
        return self.norm(hidden + self.cross_attn(sibling_embed, hidden))


class DualHead(nn.Module):
    """Output projections to the s1 and s2 vocabularies."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.proj_s1 = Linear(d_model, 2**s1_bits)
        self.proj_s2 = Linear(d_model, 2**s2_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_s1(x)

    def cond_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_s2(x)
