"""In-process engines: they hold the loaded models and do the work. No gradio here.

``Engines.create(settings)`` is cheap: nothing loads until a page or script asks for it. One package per
domain (see docs/DESIGN.md): ``core`` (shared foundations), ``tts``, ``asr``, ``scoring``, ``cleanup``,
``datasets``, ``training``, ``eval``; ``tiny`` builds the random stand-in models of tiny mode and the tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from engines.core.locks import DeviceLock, model_locks

if TYPE_CHECKING:  # the engine modules import torch: only create() imports them at run time
    from config import Settings
    from engines.asr.engine import ASREngine
    from engines.cleanup.engine import CleanupEngine
    from engines.datasets.engine import DatasetEngine
    from engines.eval.engine import EvalEngine
    from engines.scoring.mos import MOSEngine
    from engines.scoring.sim import SimilarityEngine
    from engines.tiny import TinyModels
    from engines.training.engine import TrainingEngine
    from engines.tts.engine import TTSEngine


@dataclass(eq=False)  # identity semantics: an engine set is one object, usable as a dict key
class Engines:
    """Everything the pages and the API need, passed in explicitly (no module globals holding models).

    Built by ``create``; tests may build one field by field. ``gpu_lock`` is the whole device: holding it keeps
    every model call out. TTS and ASR each take their own lane of it where the device has room for both at once
    (the CPU; see engines.core.locks), so the eval loop transcribes one batch while it synthesizes the next.
    """

    settings: Settings
    tts: TTSEngine
    asr: ASREngine
    sim: SimilarityEngine
    mos: MOSEngine
    training: TrainingEngine
    eval: EvalEngine
    datasets: DatasetEngine
    cleanup: CleanupEngine
    gpu_lock: threading.RLock | DeviceLock = field(default_factory=threading.RLock)  # every model lane at once
    tiny: TinyModels | None = None  # the random stand-in models (tiny mode only)

    @classmethod
    def create(cls, settings: Settings, tiny: TinyModels | None = None, split_lanes: bool | None = None) -> Engines:
        """Make the engine set for these settings (builds the tiny models first in tiny mode).

        Args:
            settings: the app's settings.
            tiny: tiny models already built (tests share one set); None = build them when
                ``settings.tiny_models`` is on.
            split_lanes: TTS and ASR on their own locks (True) or one lock for all (False); None = split on the
                CPU only (engines.core.locks.model_locks).
        """
        from engines.asr.engine import ASREngine
        from engines.cleanup.engine import CleanupEngine
        from engines.core.device import resolve_device
        from engines.core.errors import LabError
        from engines.datasets.engine import DatasetEngine
        from engines.eval.engine import EvalEngine
        from engines.scoring.mos import MOSEngine
        from engines.scoring.sim import SimilarityEngine
        from engines.training.engine import TrainingEngine
        from engines.tts.engine import TTSEngine

        if tiny is None and settings.tiny_models:
            from engines.tiny import ensure_tiny_models

            tiny = ensure_tiny_models(settings.workspace_sub("tiny-models"))
        try:
            device = resolve_device(settings.device)
        except LabError:  # a device that is not there: the engines say so on first use; one lock meanwhile
            device = settings.device
        locks = model_locks(device, split_lanes)
        # the whole-device lock answers as an RLock does (acquire/release/with), which is all these engines use
        lock = cast(threading.RLock, locks.device)
        tts = TTSEngine(settings, locks.tts, tiny=tiny)
        asr = ASREngine(settings, locks.asr, tiny=tiny)
        sim = SimilarityEngine(settings, locks.tts, tts=tts)
        mos = MOSEngine(settings, locks.tts)
        training = TrainingEngine(settings, lock, tiny=tiny, tts=tts)
        evaluation = EvalEngine(settings, tts, asr, training=training, sim=sim, mos=mos)
        # the training engine knows which dataset a live run uses: deleting that one is refused
        datasets = DatasetEngine(settings, asr, in_use=training.in_use, sim=sim, mos=mos)
        cleanup = CleanupEngine(settings, lock)
        return cls(settings, tts, asr, sim, mos, training, evaluation, datasets, cleanup, gpu_lock=lock, tiny=tiny)

    @property
    def device(self) -> str:
        from engines.core.device import resolve_device

        return resolve_device(self.settings.device)

    def models_dir(self) -> Path:
        """Fine-tuned / exported model directories live here; the TTS picker scans it."""
        return self.settings.workspace_sub("models")
