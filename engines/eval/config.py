"""What one evaluation is: ``EvalConfig`` (the headless JSON file and the Eval tab both make one)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from engines.core.errors import InputError
from engines.core.options import TTSOptions

_GENERATION_KEYS = frozenset(f.name for f in dataclasses.fields(TTSOptions))


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: sentences x systems (models x voices) x repeats, and how to score them."""

    sentences: str  # "builtin:<name>" (samples/sentences), "dataset:<name>" (its eval split) or a .csv/.txt path
    models: tuple[str, ...] = ()  # TTS model ids ("xtts_v2", "tiny", a workspace/models name or folder); () = default
    voices: tuple[str, ...] = ()  # "speaker:<built-in name>", "voice:<saved voice>" or an audio file path
    language: str | None = None  # language of sentences that name none (TXT files, CSVs without a language column)
    max_sentences: int | None = None  # evaluate the first N sentences only
    repeats: int = 1  # syntheses per sentence and system (seed + repeat index each)
    seed: int = 1234  # generation seed (utterance seed = seed + repeat) and bootstrap seed
    # sampling settings of every system (language and seed are set per utterance); None = settings.generation
    generation: TTSOptions | None = None
    # ASR
    asr_model: str | None = None  # Whisper size or checkpoint; None = the ASR engine's default
    beam_size: int | None = 5  # None = greedy
    asr_batch_size: int = 16  # clips under 30 s decoded together
    # short clips share Whisper's 30 s windows (engines.asr.packing): ~2.5x faster ASR on a CPU, each clip heard
    # beside its neighbours; off = each clip alone, the protocol of published evaluations
    asr_pack: bool = False
    ground_truth: bool = True  # also transcribe the set's real recordings (system "ground truth")
    # checked synthesis (engines.tts.retakes): each sentence heard by this run's Whisper and retaken up to this many
    # takes before it is scored; 0 = off. It measures what retakes buy, so its WER is not a plain model's WER.
    retakes: int = 0
    bootstrap: int = 1000  # bootstrap resamples for confidence intervals
    # audio-only metrics; None = the settings' defaults (sim_encoder, mos_predictors)
    sim_encoder: str | None = None  # engines.scoring.sim id ("resemblyzer", "wavlm-sv", "xtts") or "none"
    mos: tuple[str, ...] | None = None  # engines.scoring.mos predictors ("dnsmos", "utmos"); () = none
    name: str = ""  # a label for the run (shown in the run list)
    # how the work runs (results are the same either way): "local" in this process, or "ray" (sharded over the
    # workers of a Ray cluster: settings.ray_address); pipeline overlaps synthesis with scoring in this process
    executor: str = "local"
    pipeline: bool = False
    workers: int | None = None  # Ray workers; None = one per GPU of the cluster (one per 2 CPUs without GPUs)
    # checkpoint ranking (filled by rank_checkpoints): model folder -> checkpoint file, and the training run
    checkpoints: tuple[tuple[str, str], ...] = ()
    training_run: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], defaults: TTSOptions | None = None) -> EvalConfig:
        """Build from JSON-like data (lists become tuples; unknown keys are an error).

        Generation settings come as ``"generation": {...}`` or by their own names at the top level (as older
        run folders store them); either way they start from ``defaults`` (the app's ``settings.generation``).

        Raises:
            InputError: an unknown key or a missing ``sentences``.
        """
        data = dict(data)
        # "seed" and "language" are the config's own fields (set per utterance), not generation settings
        flat = {k: data.pop(k) for k in list(data) if k in _GENERATION_KEYS and k not in ("seed", "language")}
        nested = data.pop("generation", None)
        if nested is not None and not isinstance(nested, dict | TTSOptions):
            raise InputError("The eval config's 'generation' must be an object of generation settings.")
        given = {**(asdict(nested) if isinstance(nested, TTSOptions) else nested or {}), **flat}
        given = {k: v for k, v in given.items() if k not in ("language", "seed")}  # set per utterance
        bad = sorted(set(given) - _GENERATION_KEYS)
        if bad:
            raise InputError(
                f"Unknown generation setting(s): {', '.join(bad)}. Known: {', '.join(sorted(_GENERATION_KEYS))}."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"Unknown eval config key(s): {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}."
            )
        if not data.get("sentences"):
            raise InputError('The eval config needs \'sentences\' (e.g. "builtin:en", "dataset:<name>" or a CSV path).')
        values = dict(data)
        for key in ("models", "voices", "mos"):
            if isinstance(values.get(key), str):
                values[key] = (values[key],)
            if key in values and (key != "mos" or values[key] is not None):
                values[key] = tuple(str(v) for v in values[key] or ())
        if "checkpoints" in values:
            values["checkpoints"] = tuple((str(a), str(b)) for a, b in values["checkpoints"] or ())
        if given or defaults is not None:
            values["generation"] = dataclasses.replace(defaults or TTSOptions(), **given)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_defaults(
        self, defaults: TTSOptions, sim_encoder: str | None = None, mos: tuple[str, ...] = ()
    ) -> EvalConfig:
        """This config with what it leaves open filled in: ``generation`` from ``defaults``, and the SIM encoder and
        MOS predictors from the given defaults (the settings' ``sim_encoder`` / ``mos_predictors``)."""
        return dataclasses.replace(
            self,
            generation=self.generation if self.generation is not None else defaults,
            sim_encoder=self.sim_encoder if self.sim_encoder is not None else (sim_encoder or "none"),
            mos=self.mos if self.mos is not None else tuple(mos),
        )

    @property
    def sim_on(self) -> bool:
        return (self.sim_encoder or "none") != "none"

    def tts_options(self, language: str, repeat: int) -> TTSOptions:
        """The options of one utterance: the run's generation settings, its language, seed + repeat."""
        return dataclasses.replace(self.generation or TTSOptions(), language=language, seed=self.seed + repeat)
