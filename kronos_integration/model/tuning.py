"""Choosing the CPU projection kernel by measuring it on this machine.

Which kernel runs Kronos fastest is a property of the processor, not of the code: oneDNN's
blocked layout is 3x faster than torch's default (MKL) on the AMD EPYC this project runs on and
slower on an Intel Xeon with AMX. So `choose_kernels` times both on the model itself: one-token
steps (the bars of a forecast, bound by reading the weights) and a window pass (prefill and
sliding recompute, bound by arithmetic), each the faster of a few interleaved tries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from kronos_integration.model.decoder import FusedKronos
from kronos_integration.model.module import onednn_available

_STEP_CACHE = 256  # cached positions a measured step attends to
_WINDOW = 128  # tokens of a measured window pass
_ROUNDS = 3


@dataclass(frozen=True)
class KernelChoice:
    """The kernel of each pass and how it was chosen.

    `step`, `window`: "default" or "onednn". `seconds`: per pass and kernel, the best measured
    time (empty when nothing was measured); `reason`: "measured", "forced" or "only choice".
    """

    step: str
    window: str
    reason: str
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> str:
        """One log line: the kernels and the timings they were chosen by."""
        parts = []
        for name in ("step", "window"):
            kernel = getattr(self, name)
            timings = ", ".join(
                f"{k} {s * 1e3:.2f} ms" for k, s in self.seconds.get(name, {}).items()
            )
            parts.append(f"{name} {kernel}" + (f" ({timings})" if timings else ""))
        return f"{'; '.join(parts)} [{self.reason}]"


def forced_kernels(device: torch.device, onednn: bool) -> KernelChoice:
    """The choice without measuring: oneDNN when asked for (and possible), else the default."""
    if device.type != "cpu" or not onednn_available():
        return KernelChoice("default", "default", "only choice")
    kernel = "onednn" if onednn else "default"
    return KernelChoice(kernel, kernel, "forced")


def choose_kernels(engines: Mapping[str, FusedKronos]) -> KernelChoice:
    """Time one-token steps and a window pass with each kernel's engine (the same model) and
    keep the faster per pass (about 0.1-1 s for Kronos-small to -base)."""
    step_best = {kernel: float("inf") for kernel in engines}
    window_best = dict(step_best)
    with torch.inference_mode():
        trials = {kernel: _trials(engine) for kernel, engine in engines.items()}
        for _ in range(_ROUNDS):  # interleaved, so a busy moment hits both kernels alike
            for kernel, (step, window) in trials.items():
                step_best[kernel] = min(step_best[kernel], _seconds(step))
                window_best[kernel] = min(window_best[kernel], _seconds(window))
    return KernelChoice(
        step=min(step_best, key=step_best.__getitem__),
        window=min(window_best, key=window_best.__getitem__),
        reason="measured",
        seconds={"step": step_best, "window": window_best},
    )


def _trials(engine: FusedKronos) -> tuple[Callable[[], object], Callable[[], object]]:
    """(four one-token steps of one row, one window pass) on random inputs."""
    generator = torch.Generator().manual_seed(0)
    d = engine.d_model
    cache = engine.new_cache(1, _STEP_CACHE)
    tables = engine.rotary_tables(_STEP_CACHE)
    at = torch.tensor([_STEP_CACHE - 1])
    rotary = [(cos[at], sin[at]) for cos, sin in tables]
    x_step = torch.randn(1, d, generator=generator).to(engine.dtype)
    x_window = torch.randn(1, _WINDOW, d, generator=generator).to(engine.dtype)

    def steps() -> object:
        for _ in range(4):
            hidden = engine.step(x_step, cache, at, _STEP_CACHE, None, rotary)
            engine.s1_logits(hidden)
        return hidden

    return steps, lambda: engine.window(x_window)


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
