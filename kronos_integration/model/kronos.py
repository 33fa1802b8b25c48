"""`KronosTokenizer` and `Kronos`: checkpoint-compatible with the published `NeoQuasar/…` weights.

Both are `PyTorchModelHubMixin`s: `from_pretrained(repo_id_or_folder, revision=…, token=…)`,
`save_pretrained(folder)`, `push_to_hub(repo_id)`. Loading is strict (every `state_dict` key must
match) and always leaves the module in eval mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar, cast

import safetensors.torch
import torch
from huggingface_hub import PyTorchModelHubMixin, constants
from torch import nn

from kronos_integration.model.module import (
    BSQuantizer,
    DependencyAwareLayer,
    DualHead,
    HierarchicalEmbedding,
    Linear,
    MultiHeadCrossAttentionWithRoPE,
    RMSNorm,
    TemporalEmbedding,
    TransformerBlock,
)

_ModelT = TypeVar("_ModelT", bound="_EvalLoadingMixin")

REPO_URL = "https://github.com/shiyu-coder/Kronos"


class _EvalLoadingMixin(PyTorchModelHubMixin):
    """Strict loading into eval mode, whatever the huggingface_hub version does by default."""

    @classmethod
    def _from_pretrained(cls: type[_ModelT], *, model_id: str, **kwargs: Any) -> _ModelT:
        map_location = str(kwargs.pop("map_location", "cpu"))
        kwargs["strict"] = True
        if os.path.isdir(model_id):
            # Local folder: load it here (the mixin prints to stdout on this path).
            hub_args = ("revision", "cache_dir", "force_download", "local_files_only", "token")
            model = cls(**{k: v for k, v in kwargs.items() if k not in (*hub_args, "strict")})
            weights = Path(model_id) / constants.SAFETENSORS_SINGLE_FILE
            safetensors.torch.load_model(model, str(weights), strict=True, device=map_location)  # type: ignore[arg-type]
        else:
            model = super()._from_pretrained(model_id=model_id, map_location=map_location, **kwargs)
        model.eval()  # type: ignore[attr-defined]
        return model


class KronosTokenizer(
    nn.Module, _EvalLoadingMixin, library_name="kronos-integration", repo_url=REPO_URL
):
    """Encodes normalised candles (B, T, d_in) into two token ids per bar and decodes them back."""

    def __init__(
        self,
        d_in: int,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        n_enc_layers: int,
        n_dec_layers: int,
        ffn_dropout_p: float,
        attn_dropout_p: float,
        resid_dropout_p: float,
        s1_bits: int,
        s2_bits: int,
        beta: float,
        gamma0: float,
        gamma: float,
        zeta: float,
        group_size: int,
    ) -> None:
        super().__init__()
        self.d_in = d_in
        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        # beta, gamma0, gamma and zeta weight the quantiser's training losses; kept in config.json.
        codebook_dim = s1_bits + s2_bits

        def blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(
                TransformerBlock(
                    d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p
                )
                for _ in range(n - 1)
            )

        self.embed = Linear(d_in, d_model)
        self.encoder = blocks(n_enc_layers)
        self.quant_embed = Linear(d_model, codebook_dim)
        self.post_quant_embed_pre = Linear(s1_bits, d_model)  # used only in training
        self.post_quant_embed = Linear(codebook_dim, d_model)
        self.decoder = blocks(n_dec_layers)
        self.head = Linear(d_model, d_in)
        self.tokenizer = BSQuantizer(s1_bits, s2_bits, group_size)

    def encode(self, x: torch.Tensor, half: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d_in) normalised candles -> (s1_ids, s2_ids), each (B, T) int64."""
        if not half:
            raise ValueError("only half=True (two token ids per bar) is supported")
        z = self.embed(x)
        for block in self.encoder:
            z = block(z)
        return self.tokenizer.quantize_to_ids(self.quant_embed(z))

    def decode(
        self, ids: tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor], half: bool = True
    ) -> torch.Tensor:
        """(s1_ids, s2_ids), each (B, T) -> reconstructed normalised candles (B, T, d_in)."""
        if not half:
            raise ValueError("only half=True (two token ids per bar) is supported")
        s1_ids, s2_ids = ids
        z = self.post_quant_embed(self.tokenizer.ids_to_codes(s1_ids, s2_ids))
        for block in self.decoder:
            z = block(z)
        return self.head(z)

    def decode_shared(
        self,
        shared_ids: tuple[torch.Tensor, torch.Tensor],
        ids: tuple[torch.Tensor, torch.Tensor],
        samples: int,
    ) -> torch.Tensor:
        """The last G positions of `decode` of windows made of each series' shared first P
        tokens, shared_ids (N, P) each, then each of its `samples` rows' own G tokens, ids
        (N·samples, G) each, series-major -> (N·samples, G, d_in). The decoder is causal, so
        the shared part is decoded once per series. Inference only."""
        shared = self.post_quant_embed(self.tokenizer.ids_to_codes(*shared_ids))
        own = self.post_quant_embed(self.tokenizer.ids_to_codes(*ids))
        for block in cast(list[TransformerBlock], list(self.decoder)):
            shared, own = block.forward_shared(shared, own, samples)
        return self.head(own)


class Kronos(nn.Module, _EvalLoadingMixin, library_name="kronos-integration", repo_url=REPO_URL):
    """Decoder-only transformer over (s1, s2) token pairs with time-stamp embeddings."""

    def __init__(
        self,
        s1_bits: int,
        s2_bits: int,
        n_layers: int,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float,
        attn_dropout_p: float,
        resid_dropout_p: float,
        token_dropout_p: float,
        learn_te: bool,
    ) -> None:
        super().__init__()
        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        self.n_layers = n_layers
        self.d_model = d_model
        self.n_heads = n_heads
        self.embedding = HierarchicalEmbedding(s1_bits, s2_bits, d_model)
        self.time_emb = TemporalEmbedding(d_model, learn_te)
        self.token_drop = nn.Dropout(token_dropout_p)
        self.transformer = nn.ModuleList(
            TransformerBlock(
                d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p
            )
            for _ in range(n_layers)
        )
        self.norm = RMSNorm(d_model)
        self.dep_layer = DependencyAwareLayer(d_model)
        self.head = DualHead(s1_bits, s2_bits, d_model)

    @property
    def cross_attn(self) -> MultiHeadCrossAttentionWithRoPE:
        return self.dep_layer.cross_attn

    def hidden_states(
        self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, stamp: torch.Tensor | None
    ) -> torch.Tensor:
        """Final normed hidden states (B, T, d_model) of the T given tokens (B, T) each."""
        x = self.embedding(s1_ids, s2_ids)  # (B, T, d)
        if stamp is not None:
            x = x + self.time_emb(stamp)
        x = self.token_drop(x)
        for block in self.transformer:
            x = block(x)
        return self.norm(x)

    def decode_s1(
        self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, stamp: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) ids, stamp (B, T, 5) -> (s1 logits (B, T, 2^s1_bits), hidden (B, T, d_model))."""
        hidden = self.hidden_states(s1_ids, s2_ids, stamp)
        return self.head(hidden), hidden

    def decode_s2(self, hidden: torch.Tensor, s1_ids: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, d), sampled s1 ids (B, 1) -> s2 logits (B, T, 2^s2_bits).

        Only the last position is meaningful in inference (the reference broadcasts the single
        query's attention output over every position).
        """
        return self.head.cond_forward(self.dep_layer(hidden, self.embedding.emb_s1(s1_ids)))
