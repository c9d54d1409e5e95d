"""CPU/GPU savings that leave every sample the same: applied once to a loaded model, never per sentence.

Each one here was checked to give bit-identical audio for a fixed seed (``tests/test_tts_speedups.py``,
``python -m bench --only overhead``). Savings that change numerics (a fused tanh-GELU in the GPT, taking the
decoder's latents from the sampling pass instead of coqui's second GPT pass) are measured in the bench but not
applied: see docs/performance.md, "Synthesis overhead vs coqui".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from torch import nn

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts


def fold_weight_norm(module: nn.Module) -> int:
    """Bake every weight-norm parametrization under ``module`` into a plain weight.

    coqui's ``Xtts.load_checkpoint`` leaves the HiFi-GAN decoder's 76 weight-normed convolutions parametrized, so
    every sentence recomputes ``g * v / ||v||`` for ~18 M weights before decoding. Folding computes it once, with
    the same function, so the decoder's output is bit-identical. Inference only: a folded module trains
    differently (the trainer loads its own copy).

    Returns:
        How many modules were folded.
    """
    from torch.nn.utils.parametrize import is_parametrized, remove_parametrizations

    folded = 0
    for sub in list(module.modules()):
        if is_parametrized(sub):
            for name in list(cast(nn.ModuleDict, sub.parametrizations)):
                remove_parametrizations(sub, name, leave_parametrized=True)
            folded += 1
    return folded


def prepare_for_inference(model: Xtts) -> int:
    """The savings a freshly loaded model gets (see the module docstring). Returns modules folded."""
    return fold_weight_norm(model.hifigan_decoder.waveform_decoder)
