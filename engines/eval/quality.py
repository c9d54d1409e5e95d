"""The audio-only metrics of a run: speaker similarity (SIM) against a reference voice, and predicted MOS.

One SIM encoder per run (``config.sim_encoder``): cosines of different encoders are not on one scale, so a run
never mixes them and every row records its encoder. Independent verifiers (Resemblyzer, WavLM-SV) give SIM-o as
papers report it; "xtts" is the generating model's own encoder, i.e. self-similarity.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.core.errors import LabError
from engines.eval.config import EvalConfig
from engines.eval.plan import System

if TYPE_CHECKING:  # engine modules import torch; eval only needs their types here
    from engines.scoring.mos import MOSEngine
    from engines.scoring.sim import SimilarityEngine
    from engines.tts.engine import TTSEngine

log = logging.getLogger(__name__)

SIM_MIN_SECONDS = 0.5  # shorter clips get no SIM (an embedding of a syllable says nothing about the speaker)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class QualityScorer:
    """SIM and MOS of one run's clips; reference embeddings are computed once per voice."""

    def __init__(
        self,
        config: EvalConfig,
        systems: list[System],
        *,
        tts: TTSEngine,
        sim: SimilarityEngine | None,
        mos: MOSEngine | None,
        unavailable: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.systems = systems
        self.tts = tts
        self.sim = sim
        self.mos = mos
        self.encoder = config.sim_encoder if config.sim_on and sim is not None else None
        self.unavailable = dict(unavailable or {})
        self.predictors = [p for p in (config.mos or ()) if mos is not None and p not in self.unavailable]
        self._refs: dict[tuple[str, str | None], tuple[np.ndarray | None, str]] = {}
        # the model whose encoder "xtts" SIM uses for rows without a model of their own (ground truth, audio folders)
        self.default_model = next((s.model_id for s in systems if not s.external), None)

    def _sim(self) -> SimilarityEngine:
        assert self.sim is not None  # self.encoder is set only with an engine
        return self.sim

    def _mos(self) -> MOSEngine:
        assert self.mos is not None  # self.predictors is non-empty only with an engine
        return self.mos

    # ------------------------------------------------------------------ what the report says

    def encoder_label(self) -> str:
        if self.encoder is None:
            return "none (SIM off)"
        try:
            return self._sim().info(self.encoder, model_id=self.default_model).name
        except LabError as exc:
            return f"{self.encoder} ({exc})"

    def models(self) -> dict[str, Any]:
        """``{"sim": encoder info or None, "mos": {predictor: info | {"available": False, "reason": ...}}}``."""
        sim = None
        if self.encoder is not None:
            sim = self._sim().info(self.encoder, model_id=self.default_model).as_dict()
        mos: dict[str, Any] = {}
        for name in self.config.mos or ():
            if name in self.unavailable:
                mos[name] = {"id": name, "available": False, "reason": self.unavailable[name]}
            else:
                mos[name] = {**self._mos().info(name).as_dict(), "available": True}
        return {"sim": sim, "mos": mos}

    # ------------------------------------------------------------------ references

    def _model_for(self, system: System | None) -> str | None:
        if system is not None and not system.external:
            return system.model_id
        return self.default_model

    def reference(self, system: System | None) -> tuple[np.ndarray | None, str]:
        """The unit-length embedding of a system's reference voice (mean over its clips) and its label.

        ``system=None`` is the ground truth: scored against the run's first reference voice with audio, so the
        report shows the SIM of real recordings (the ceiling) next to the systems'. (None, "") when there is no
        SIM, or no reference with audio (a built-in speaker has none, except for XTTS's own encoder).
        """
        if self.encoder is None:
            return None, ""
        if system is None:
            with_audio = [s for s in self.systems if s.voice.files]
            speakers = [s for s in self.systems if s.voice.kind == "speaker"] if self.encoder == "xtts" else []
            chosen = next(iter(with_audio or speakers), None)
            if chosen is None:
                return None, ""
            return self.reference(chosen)
        voice = system.voice
        model = self._model_for(system) if self.encoder == "xtts" else None
        key = (voice.spec, model)
        if key in self._refs:
            return self._refs[key]
        emb: np.ndarray | None = None
        if voice.kind == "speaker":
            if self.encoder == "xtts":
                emb = self._speaker_embedding(system)
        elif voice.files:
            embs = []
            for f in voice.files:
                try:
                    embs.append(self._sim().embed(self.encoder, Path(f), model_id=model))
                except LabError as exc:
                    log.warning("No %s embedding for reference %s: %s", self.encoder, f, exc)
            emb = _unit(np.mean(embs, axis=0)) if embs else None
        out = (emb, voice.display if emb is not None else "")
        self._refs[key] = out
        return out

    def _speaker_embedding(self, system: System) -> np.ndarray | None:
        model = self.tts.load(system.model_id)
        entry = model.speaker_manager.speakers.get(system.voice.speaker)
        if entry is None:
            return None
        return _unit(entry["speaker_embedding"].reshape(-1).float().cpu().numpy())

    # ------------------------------------------------------------------ one clip

    def score(
        self,
        audio: np.ndarray,
        sr: int,
        audio_16k: np.ndarray,
        reference: tuple[np.ndarray | None, str],
        system: System | None,
        label: str,
    ) -> dict[str, Any]:
        """SIM and MOS columns of one clip (empty where a metric is off, unavailable or the clip too short)."""
        out: dict[str, Any] = {}
        ref, ref_label = reference
        if self.encoder is not None and ref is not None and len(audio) >= SIM_MIN_SECONDS * sr:
            model = self._model_for(system) if self.encoder == "xtts" else None
            try:
                emb = self._sim().embed(self.encoder, audio, sr=sr, model_id=model)
                sim = self._sim().similarity(self.encoder, ref, emb)
                out.update({"sim": sim, "sim_encoder": self.encoder, "sim_reference": ref_label})
            except LabError as exc:
                log.warning("No SIM for %s: %s", label, exc)
        if "dnsmos" in self.predictors:
            try:
                out.update(self._mos().dnsmos(audio_16k, 16000))
            except LabError as exc:
                log.warning("No DNSMOS for %s: %s", label, exc)
        if "utmos" in self.predictors:
            try:
                out["utmos"] = self._mos().utmos(audio_16k, 16000)
            except LabError as exc:
                log.warning("No UTMOS for %s: %s", label, exc)
        return out
