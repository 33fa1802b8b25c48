"""Projection kernels for inference, and which floating-point dtypes a device can run.

A `Projection` is `y = x Wᵀ + b` with W kept in the layout one kernel wants: `"default"` is
torch's own `F.linear` (MKL or cuBLAS), `"onednn"` oneDNN's blocked layout (CPU only). Which is
faster depends on the processor (oneDNN wins by 3x on the AMD EPYC of this project's machines,
and loses on an Intel Xeon with AMX), so the predictor measures both (see `tuning.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kronos_integration.model.module import onednn_available

KERNELS = ("default", "onednn")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class Projection:
    """`y = x Wᵀ + b` for inference with W (out, in) laid out for `kernel`; x (..., in)."""

    __slots__ = ("bias", "kernel", "out_features", "weight")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, kernel: str) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        weight = weight.detach().contiguous()
        self.out_features = weight.shape[0]
        self.kernel = kernel
        self.bias = None if bias is None else bias.detach().contiguous()
        if kernel == "onednn":
            if weight.device.type != "cpu" or not onednn_available():
                raise ValueError("the oneDNN kernel needs a CPU weight and a torch with oneDNN")
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None)
        else:
            self.weight = weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def fused(
    layers: list[torch.nn.Linear], kernel: str, dtype: torch.dtype | None = None
) -> Projection:
    """One `Projection` computing the given layers' outputs side by side, (..., sum(out)).

    A single layer in its own dtype with the default kernel shares the layer's weight.
    """
    weights = [layer.weight.detach() for layer in layers]
    weight = weights[0] if len(weights) == 1 else torch.cat(weights)
    biases = [layer.bias for layer in layers]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat(
            [
                layer.weight.new_zeros(layer.out_features) if b is None else b.detach()
                for layer, b in zip(layers, biases, strict=True)
            ]
        )
    if dtype is not None:
        weight = weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    return Projection(weight, bias, kernel)


def supported_dtypes(device: str | torch.device) -> tuple[torch.dtype, ...]:
    """The dtypes the predictor runs on `device`: float32 everywhere; bfloat16 on CPUs with
    native bf16 arithmetic (AVX-512 BF16 or AMX) and on CUDA devices that support it; float16
    on CUDA."""
    device = torch.device(device)
    dtypes = [torch.float32]
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        native_bf16 = capabilities.get("avx512_bf16", False) or capabilities.get("amx_bf16", False)
        if native_bf16 and onednn_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            dtypes.append(torch.bfloat16)
    elif device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            dtypes.append(torch.bfloat16)
        dtypes.append(torch.float16)
    return tuple(dtypes)


def dtype_supported(device: str | torch.device, dtype: torch.dtype | str) -> bool:
    """Whether `device` can run the predictor in `dtype` (a torch dtype or its name)."""
    return resolve_dtype(dtype) in supported_dtypes(device)


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype from itself or its name ("float32", "bfloat16", "float16").

    Raises ValueError for any other name or dtype.
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype}")
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    """ "float32", "bfloat16", ...: a torch dtype as `KRONOS_DTYPE` names it."""
    return str(dtype).removeprefix("torch.")


def check_dtype(device: str | torch.device, dtype: torch.dtype | str) -> torch.dtype:
    """`dtype` resolved, or ValueError naming what `device` can run instead."""
    resolved = resolve_dtype(dtype)
    supported = supported_dtypes(device)
    if resolved not in supported:
        names = [name for name, value in DTYPES.items() if value in supported]
        raise ValueError(
            f"dtype {dtype_name(resolved)} cannot run on {torch.device(device)}; "
            f"this device supports {names}"
        )
    return resolved
