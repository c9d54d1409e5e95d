"""The faster-whisper (CTranslate2) backend: model ids, loading, decoding.

The registry hands this backend ``"faster-whisper:<size>"`` (downloaded from the Hugging Face hub when online),
``"faster-whisper:<folder>"`` and a CTranslate2 folder given directly (``model.bin`` + ``config.json``).
Every other id is openai-whisper's. What the two backends share stays above them (``engines.asr.guards`` and
the engine): the voice-activity gate before decoding, the fallback and loop rules, the Transcript built from
the segments. This module only turns a decode request into faster-whisper calls and their results into
whisper.transcribe's result shape.

Options map one to one (``decode_kwargs``): greedy is ``beam_size=1``; one sample per sampled temperature
(``best_of=1``, what whisper.transcribe does when not told otherwise); no conditioning on previous text; the
engine's own VAD (``clip_timestamps``), never faster-whisper's ``vad_filter``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import WHISPER_SIZES, Settings
from engines.asr.backends.base import (
    APPEND_PUNCTUATION,
    OOM_ADVICE,
    PREPEND_PUNCTUATION,
    DecodeRequest,
    RawSegment,
    RawTranscription,
    RawWord,
    TextTokenizer,
    Window,
    oom_guard_any,
)
from engines.asr.options import ASROptions
from engines.core.errors import InputError, LabError, MissingWeightsError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

PREFIX = "faster-whisper:"
BACKEND = "faster-whisper"
MODEL_FILES = ("model.bin", "config.json")  # what makes a folder a CTranslate2 Whisper model
MULTILINGUAL_VOCAB = 51865  # as openai-whisper's rule: English-only models have 51864 tokens
# "auto" = int8 on CPU (CTranslate2's quantized kernels), float16 on CUDA; the rest are CTranslate2's names
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "float16", "bfloat16", "float32")


def sizes() -> tuple[str, ...]:
    """The Whisper sizes faster-whisper can download (CTranslate2 conversions on the hub), in WHISPER_SIZES order."""
    from faster_whisper.utils import available_models

    known = set(available_models())
    return tuple(s for s in WHISPER_SIZES if s in known)


def is_ct2_folder(path: Path) -> bool:
    """Whether a folder holds a CTranslate2 Whisper model."""
    return path.is_dir() and all((path / name).is_file() for name in MODEL_FILES)


def is_faster_id(model_id: str | None) -> bool:
    """Whether a model id is faster-whisper's: the prefix, or a CTranslate2 folder given directly."""
    if not model_id:
        return False
    return model_id.startswith(PREFIX) or is_ct2_folder(Path(model_id).expanduser())


def is_model(model: object) -> bool:
    """Whether a loaded model is faster-whisper's (the other backend's is a torch ``whisper.Whisper``)."""
    return type(model).__module__.startswith("faster_whisper")


def model_name(model_id: str) -> str:
    """What messages call the model: the size, or the folder's name."""
    target = model_id.removeprefix(PREFIX)
    return target if target in sizes() else Path(target).name


def check_compute_type(name: str) -> str:
    """The compute type setting, normalised.

    Raises:
        InputError: a name that is not one of COMPUTE_TYPES.
    """
    value = (name or "auto").strip().lower()
    if value not in COMPUTE_TYPES:
        raise InputError(
            f"Unknown ASR compute type {name!r} (asr_compute_type); use one of {', '.join(COMPUTE_TYPES)}."
        )
    return value


def compute_type(setting: str, device: str) -> str:
    """The CTranslate2 compute type for a setting on a device ("auto": int8 on CPU, float16 on CUDA).

    Raises:
        InputError: an unknown name, or one the device does not support (the message lists those it does).
    """
    import ctranslate2

    value = check_compute_type(setting)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if value == "auto":
        return "float16" if kind == "cuda" else "int8"
    supported = ctranslate2.get_supported_compute_types(kind)
    if value not in supported:
        raise InputError(
            f"ASR compute type {value!r} is not supported on {kind} here; use auto or one of {', '.join(sorted(supported))}."
        )
    return value


def _vocabulary_size(folder: Path) -> int | None:
    """Tokens in a CTranslate2 model's vocabulary file (vocabulary.txt or .json), or None without one."""
    if (folder / "vocabulary.json").is_file():
        return len(json.loads((folder / "vocabulary.json").read_text(encoding="utf-8")))
    if (folder / "vocabulary.txt").is_file():
        with (folder / "vocabulary.txt").open(encoding="utf-8") as fh:
            return sum(1 for _ in fh)
    return None


def info(model: WhisperModel) -> dict[str, str]:
    """What provenance records about a loaded model: backend, compute type, device."""
    return {"backend": BACKEND, "compute_type": model.model.compute_type, "device": model.model.device}


def suppress_tokens(model: WhisperModel, timestamps: bool) -> list[int]:
    """Same list as openai_whisper.suppress_tokens: "-1", plus <|notimestamps|> when decoding text only."""
    return [-1] if timestamps else [-1, model.hf_tokenizer.token_to_id("<|notimestamps|>")]


def decode_kwargs(
    model: WhisperModel,
    options: ASROptions,
    temperature: float | tuple[float, ...],
    sample_len: int | None,
    thresholds: Mapping[str, float],
) -> dict[str, Any]:
    """ASROptions as faster-whisper's transcribe arguments. ``thresholds`` are engines.asr.guards' (whisper's names
    and values), so both backends drop and redo the same windows."""
    return {
        "language": options.language if model.model.is_multilingual else "en",
        "task": options.task,
        "beam_size": options.beam_size or 1,
        "best_of": 1,
        "temperature": temperature,
        "compression_ratio_threshold": thresholds["compression_ratio_threshold"],
        "log_prob_threshold": thresholds["logprob_threshold"],
        "no_speech_threshold": thresholds["no_speech_threshold"],
        "condition_on_previous_text": False,
        "without_timestamps": not options.segment_timestamps,
        "suppress_tokens": suppress_tokens(model, options.segment_timestamps),
        "word_timestamps": options.word_timestamps,
        "initial_prompt": options.initial_prompt,
        "max_new_tokens": sample_len,
        "vad_filter": False,
    }


@dataclass
class Decoded:
    """One clip's batched decode, with the fields the engine's batch rules read (whisper's DecodingResult's)."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float = 0.0


class FasterWhisperBackend:
    """faster-whisper: the hub's sizes (cached), local CTranslate2 folders, and CTranslate2's decoding calls."""

    name = BACKEND
    batches_beam_search = True  # CTranslate2 batches beams correctly

    def __init__(self, settings: Settings, models_dir: Path) -> None:
        self.settings = settings
        self.models_dir = models_dir  # workspace/models/whisper/: CTranslate2 folders are listed from there too

    # ----- models -----

    @property
    def cache_dir(self) -> Path | None:
        """Hub download folder: ``<whisper_cache_dir>/faster-whisper`` when that is set, else the HF hub cache."""
        folder = self.settings.path("whisper_cache_dir")
        return None if folder is None else folder / "faster-whisper"

    def _cached(self, size: str) -> Path | None:
        from faster_whisper.utils import download_model

        try:
            found = download_model(size, local_files_only=True, cache_dir=self._cache_arg())
        except Exception:  # noqa: BLE001 - huggingface_hub says "not cached" with several error types
            return None
        return Path(found) if is_ct2_folder(Path(found)) else None

    def _cache_arg(self) -> str | None:
        return None if self.cache_dir is None else str(self.cache_dir)

    def claims(self, model_id: str) -> bool:
        return is_faster_id(model_id)

    def owns(self, model: object) -> bool:
        return is_model(model)

    def list_models(self) -> list[tuple[str, str]]:
        """(label, model_id): the sizes (``(downloaded)`` when cached), then CTranslate2 folders in models_dir."""
        models = []
        for size in sizes():
            state = ", downloaded" if self._cached(size) else ""
            models.append((f"{size} (faster-whisper{state})", PREFIX + size))
        if self.models_dir.is_dir():
            for path in sorted(p for p in self.models_dir.iterdir() if is_ct2_folder(p)):
                models.append((f"{path.name} (faster-whisper, local)", PREFIX + str(path)))
        return models

    def folder(self, model_id: str, download: bool = True) -> Path:
        """The model's CTranslate2 folder; a size missing from the cache is downloaded when ``download``.

        Raises:
            MissingWeightsError: a folder that does not exist or is not a CTranslate2 model, or a size neither
                cached nor downloadable (the message names the hub repository and the cache folder).
        """
        from faster_whisper.utils import _MODELS, download_model

        target = model_id.removeprefix(PREFIX)
        if target in sizes():
            found = self._cached(target)
            if found is not None or not download:
                if found is None:
                    raise MissingWeightsError(self._missing(target, "it is not downloaded yet"))
                return found
            try:
                return Path(download_model(target, cache_dir=self._cache_arg()))
            except Exception as exc:  # noqa: BLE001 - offline, refused, interrupted: all mean "no weights"
                raise MissingWeightsError(self._missing(target, f"the download failed ({exc})")) from exc
        path = Path(target).expanduser()
        candidates = [path] if path.is_absolute() else [self.models_dir / path, Path.cwd() / path]
        for candidate in candidates:
            if is_ct2_folder(candidate):
                return candidate
        if target in _MODELS:  # a hub name outside WHISPER_SIZES (distil-*): not offered
            raise InputError(f"faster-whisper model {target!r} is not offered; sizes: {', '.join(sizes())}.")
        raise MissingWeightsError(
            f"faster-whisper model {target!r} not found: expected a CTranslate2 folder holding "
            f"{' and '.join(MODEL_FILES)} (looked in {', '.join(str(c) for c in candidates)}), or a size "
            f"({', '.join(sizes()[:6])}, ...) as 'faster-whisper:<size>'."
        )

    def _missing(self, size: str, why: str) -> str:
        from faster_whisper.utils import _MODELS

        where = self.cache_dir or "the Hugging Face hub cache (~/.cache/huggingface/hub)"
        return (
            f"faster-whisper model '{size}' is not on disk and {why}. It downloads from the Hugging Face hub "
            f'({_MODELS[size]}) into {where}. On a machine with internet run: python -c "from faster_whisper '
            f"import download_model; download_model('{size}')\" and copy the model folder here, then pick it as "
            "'faster-whisper:<folder>'."
        )

    def load(self, model_id: str, device: str) -> WhisperModel:
        """Load a model with the compute type ``asr_compute_type`` names for this device.

        Raises:
            MissingWeightsError: see ``folder``. InputError: a compute type the device lacks, or a folder
                CTranslate2 cannot read.
        """
        import torch
        from faster_whisper import WhisperModel

        folder = self.folder(model_id)
        ctype = compute_type(self.settings.asr_compute_type, device)
        kind, _, index = device.partition(":")
        try:
            # as many threads as torch (and so openai-whisper) uses: the backends compare like for like
            return WhisperModel(
                str(folder),
                device=kind,
                device_index=int(index or 0),
                compute_type=ctype,
                cpu_threads=torch.get_num_threads(),
            )
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise
            raise InputError(f"{folder} is not a CTranslate2 Whisper model this version can load: {exc}") from exc

    def display_name(self, model_id: str) -> str:
        return model_name(model_id)

    def multilingual_alternative(self, model_id: str) -> str:
        size = model_id.removeprefix(PREFIX)
        if size in sizes() and model_id.startswith(PREFIX):
            return f"'{PREFIX}{size.removesuffix('.en')}' (the same size without '.en')"
        return "a faster-whisper size without '.en', such as 'faster-whisper:small'"

    def is_multilingual(self, model_id: str, resident: WhisperModel | None = None) -> bool:
        """English-only or not, without loading: a size by its name, a folder by its vocabulary size."""
        if resident is not None:
            return bool(resident.model.is_multilingual)
        target = model_id.removeprefix(PREFIX)
        if target in sizes():
            return not target.endswith(".en")
        folder = self.folder(model_id, download=False)
        n_vocab = _vocabulary_size(folder)
        if n_vocab is not None:
            return n_vocab >= MULTILINGUAL_VOCAB
        return bool(self.load(model_id, "cpu").model.is_multilingual)

    def random_weights(self, model_id: str) -> bool:
        return False  # CTranslate2 models are conversions of trained ones

    def quality_rules(self, model: WhisperModel) -> bool:
        return True  # conversions of trained models: the fallback ladder and the loop guard always apply

    def info(self, model: WhisperModel) -> dict[str, str]:
        return info(model)

    def provenance(self, model_id: str) -> dict[str, Any]:
        """Backend, faster-whisper's and CTranslate2's versions, and the model folder with its SHA-256 when it is
        on disk (never downloaded for this)."""
        from engines.core.provenance import installed_version, weights_sha256

        record: dict[str, Any] = {
            "backend": BACKEND,
            "versions": {
                "faster-whisper": installed_version("faster-whisper"),
                "ctranslate2": installed_version("ctranslate2"),
            },
        }
        try:
            folder = self.folder(model_id, download=False)
        except LabError:
            return record
        record.update({"file": str(folder), "sha256": weights_sha256(folder)})
        return record

    # ----- decoding -----

    def transcribe(self, model: WhisperModel, audio: np.ndarray, request: DecodeRequest) -> RawTranscription:
        """One faster-whisper transcription, as whisper.transcribe's result ({"segments": [...], "language"}).

        Segments are consumed here (faster-whisper yields them lazily), under the caller's GPU lock.
        """
        import ctranslate2

        options = request.options
        with oom_guard_any("faster-whisper transcription", OOM_ADVICE):
            ctranslate2.set_random_seed(int(options.seed))  # the ladder's sampled reruns: same audio, same text
            segments, result = model.transcribe(
                audio,
                clip_timestamps=request.speech.clip_timestamps or "0",
                **decode_kwargs(model, options, request.temperatures, request.sample_len, request.thresholds),
            )
            raw: list[RawSegment] = []
            for s in segments:
                item: RawSegment = {
                    "seek": s.seek,
                    "tokens": list(s.tokens),
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "avg_logprob": s.avg_logprob,
                    "no_speech_prob": s.no_speech_prob,
                    "temperature": s.temperature,
                    "compression_ratio": s.compression_ratio,
                }
                if s.words is not None:
                    item["words"] = [
                        {"start": w.start, "end": w.end, "word": w.word, "probability": w.probability} for w in s.words
                    ]
                raw.append(item)
        return {"segments": raw, "language": result.language}

    def window(self, model: WhisperModel, audio: np.ndarray) -> Window | None:
        """A short clip's features exactly as faster-whisper's transcribe slices them."""
        from faster_whisper.audio import pad_or_trim

        fe = model.feature_extractor
        features = fe(audio)
        content_frames = features.shape[-1] - 1
        if content_frames > fe.nb_max_frames:
            return None
        detect = pad_or_trim(features[:, : fe.nb_max_frames])
        decode = pad_or_trim(features[:, :content_frames])
        return Window(detect, decode, float(content_frames * fe.time_per_frame))

    def tokenizer(self, model: WhisperModel, language: str | None, task: str) -> TextTokenizer:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=task, language=language or "en")

    def detect_languages(self, model: WhisperModel, features: Sequence[np.ndarray]) -> list[str]:
        """The most likely language of each 30 s window (what faster-whisper's transcribe picks for one window)."""
        results = model.model.detect_language(model.encode(np.stack(features)))
        return [r[0][0][2:-2] for r in results]

    def decode_batch(
        self,
        model: WhisperModel,
        features: Sequence[np.ndarray],
        language: str,
        options: ASROptions,
        sample_len: int | None,
    ) -> list[Decoded]:
        """Decode several 30 s windows at temperature 0 in one CTranslate2 ``generate``, each scored the way
        faster-whisper's ``generate_with_fallback`` scores one (so a result that fails there fails here)."""
        tok = self.tokenizer(model, language, options.task)
        return _generate(model, model.encode(np.stack(features)), len(features), tok, options, sample_len)

    def decode_packed(
        self,
        model: WhisperModel,
        features: Sequence[np.ndarray],
        frames: Sequence[int],
        language: str,
        options: ASROptions,
        sample_len: int | None,
    ) -> list[tuple[Decoded, list[RawWord]]]:
        """``decode_batch`` and faster-whisper's word alignment (``find_alignment``, punctuation merged as its
        word timestamps merge it) on the same encoder output."""
        from faster_whisper.transcribe import merge_punctuations

        tok = self.tokenizer(model, language, options.task)
        encoded = model.encode(np.stack(features))
        decoded = _generate(model, encoded, len(features), tok, options, sample_len)
        texts = [[t for t in d.tokens if t < tok.eot] for d in decoded]
        words: list[list[RawWord]] = [[] for _ in decoded]
        spoken = [i for i, t in enumerate(texts) if t]  # CTranslate2 cannot align an empty text
        if spoken:
            # CTranslate2 aligns over mel frames (two per encoder frame), capped at the 30 s window
            limits = [min(int(frames[i]), model.feature_extractor.nb_max_frames) for i in spoken]
            if len(spoken) < len(texts):
                encoded = model.encode(np.stack([features[i] for i in spoken]))
            alignments = model.find_alignment(tok, [texts[i] for i in spoken], encoded, limits)
            for i, alignment in zip(spoken, alignments):
                merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
                words[i] = [
                    {
                        "word": w["word"],
                        "start": float(w["start"]),
                        "end": float(w["end"]),
                        "probability": float(w["probability"]),
                    }
                    for w in alignment
                    if w["word"]
                ]
        return list(zip(decoded, words))


def _generate(
    model: WhisperModel, encoded: Any, count: int, tok: Any, options: ASROptions, sample_len: int | None
) -> list[Decoded]:
    """One CTranslate2 ``generate`` over encoded windows at temperature 0, text only, each scored the way
    faster-whisper's ``generate_with_fallback`` scores one (so a result that fails there fails here)."""
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    prompt = model.get_prompt(tok, [], without_timestamps=True)
    max_length = model.max_length if sample_len is None else len(prompt) + sample_len
    results = model.model.generate(
        encoded,
        [prompt] * count,
        beam_size=options.beam_size or 1,
        patience=1,
        length_penalty=1,
        max_length=max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tok, suppress_tokens(model, False)),
        max_initial_timestamp_index=int(round(1.0 / model.time_precision)),
    )
    out = []
    for r in results:
        tokens = r.sequences_ids[0]
        avg_logprob = r.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1: as generate_with_fallback
        out.append(Decoded(tokens, avg_logprob, r.no_speech_prob, get_compression_ratio(tok.decode(tokens).strip())))
    return out


__all__ = [
    "BACKEND",
    "COMPUTE_TYPES",
    "PREFIX",
    "Decoded",
    "FasterWhisperBackend",
    "check_compute_type",
    "compute_type",
    "decode_kwargs",
    "info",
    "is_ct2_folder",
    "is_faster_id",
    "is_model",
    "model_name",
    "sizes",
]
