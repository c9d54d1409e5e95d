"""In-process engines: they hold the loaded models and do the work. No gradio here.

``Engines.create(settings)`` is cheap: nothing loads until a page or script asks for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # config imports engines.core.options: a runtime import here would be a cycle
    from config import Settings

log = logging.getLogger(__name__)


@dataclass
class Engines:
    """Everything the pages need, passed in explicitly (no module globals holding models)."""

    settings: Settings
    gpu_lock: threading.RLock = field(default_factory=threading.RLock)  # one GPU job at a time
    tts: Any = None  # engines.tts.TTSEngine
    asr: Any = None  # engines.asr.ASREngine
    training: Any = None  # engines.training.TrainingEngine
    evaluation: Any = None  # engines.eval.EvalEngine
    datasets: Any = None  # engines.datasets.DatasetEngine
    sim: Any = None  # engines.scoring.sim.SimilarityEngine
    mos: Any = None  # engines.scoring.mos.MOSEngine
    extra: dict[str, Any] = field(default_factory=dict)  # later engines (finetune, eval)

    @classmethod
    def create(cls, settings: Settings) -> Engines:
        """Make the engine set for these settings (builds tiny models first in tiny mode)."""
        engines = cls(settings=settings)
        if settings.tiny_models:
            from engines.tiny import ensure_tiny_models

            engines.extra["tiny"] = ensure_tiny_models(settings.workspace_sub("tiny-models"))
        from engines.asr.engine import ASREngine
        from engines.eval import EvalEngine
        from engines.tts.engine import TTSEngine

        engines.tts = TTSEngine(settings, engines.gpu_lock, tiny=engines.extra.get("tiny"))
        engines.asr = ASREngine(settings, engines.gpu_lock, tiny=engines.extra.get("tiny"))
        from engines.scoring.mos import MOSEngine
        from engines.scoring.sim import SimilarityEngine

        engines.sim = SimilarityEngine(settings, engines.gpu_lock, tts=engines.tts)
        engines.mos = MOSEngine(settings, engines.gpu_lock)
        from engines.training.engine import TrainingEngine

        engines.training = TrainingEngine(settings, engines.gpu_lock, tiny=engines.extra.get("tiny"), tts=engines.tts)
        engines.eval = EvalEngine(
            settings, engines.tts, engines.asr, training=engines.training, sim=engines.sim, mos=engines.mos
        )
        from engines.datasets import DatasetEngine

        # the training engine knows which dataset a live run uses: deleting that one is refused
        engines.datasets = DatasetEngine(settings, engines.asr, in_use=getattr(engines.training, "in_use", None))
        return engines

    @property
    def device(self) -> str:
        from engines.core.device import resolve_device

        return resolve_device(self.settings.device)

    def models_dir(self) -> Path:
        """Fine-tuned / exported model directories live here; the TTS picker scans it."""
        return self.settings.workspace_sub("models")
