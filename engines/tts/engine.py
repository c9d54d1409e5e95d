"""XTTS v2 text-to-speech: model picking and loading, voice latents, sentence-wise synthesis.

Runs without the UI::

    from config import load_settings
    from engines import Engines
    eng = Engines.create(load_settings())
    result = eng.tts.synthesize("Hello there.", reference=[Path("me.wav")])
    print(result.path, result.rtf)

Why this module is over 700 lines: request checks, the voice-latent cache and sentence-wise synthesis
share one loaded model and its lock, and the checks must be importable without loading torch models
(Eval's planner calls ``check_request``). Model lookup and download live in ``engines.core.catalog``, text
splitting in ``engines.tts.engine.textsplit``, options in ``engines.core.options``, the streaming thread and queue in
``engines.tts.engine.stream``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from config import XTTS_LANGUAGES, Settings
from engines.core import catalog
from engines.core.audio import (
    AUDIO_EXTENSIONS,
    clipped_fraction,
    collect_notices,
    file_sha256,
    is_silent,
    load_audio,
    rms_dbfs,
    save_wav,
    write_json,
)
from engines.core.catalog import BASE_ID, MODEL_FILES, TINY_ID
from engines.core.device import oom_guard, resolve_device
from engines.core.errors import AudioError, CancelledError, InputError, LabError, MissingWeightsError
from engines.core.holder import ModelHolder
from engines.core.names import check_voice_name, slug, xtts_language
from engines.core.options import OPTION_RANGES, TTSOptions
from engines.core.progress import LogFn, ProgressFn, log_info, no_progress
from engines.core.provenance import name_stamp, utc_now, versions
from engines.tts.retakes import RetakeChecker, SentenceTakes, reseeded, take_seed
from engines.tts.stream import StreamFeed, SynthesisStream
from engines.tts.textsplit import DEFAULT_CHAR_LIMIT, split_text

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

    from engines.tiny import TinyModels
    from engines.tts.pronounce import PronunciationMap

log = logging.getLogger(__name__)
_logger = log  # for methods whose `log` parameter (a callable from the caller) shadows the module logger

COND_SR = 22050  # XTTS computes conditioning at 22.05 kHz
PAUSE_SECONDS = 0.2  # silence between sentences
MIN_EMBED_SECONDS = 0.1  # the speaker encoder needs a few frames
REFERENCE_NAME = "reference.wav"  # a model dir may ship its own voice
CLIP_LEVEL = 0.99  # a sample at or above this magnitude sits at full scale
CLIPPED_SHARE = 0.01  # a reference with more of its samples at full scale is called clipped (speech: ~0)
# Streaming: coqui's own inference_stream defaults, passed explicitly (one place to change them).
STREAM_CHUNK_TOKENS = 20  # GPT audio tokens per streamed chunk (~0.9 s of speech)
STREAM_OVERLAP_SAMPLES = 1024  # crossfade between consecutive chunks of one sentence (at 24 kHz)

# Extra packages some languages need for text normalisation (coqui-tts extras): code -> (modules, install hint).
LANGUAGE_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "zh-cn": (("pypinyin",), "pip install 'coqui-tts[zh]'"),
    "ja": (("cutlet", "fugashi", "unidic_lite"), "pip install 'coqui-tts[ja]'"),
}


@dataclass
class TTSResult:
    """One synthesis: the audio, where it was saved, and how long it took."""

    audio: np.ndarray  # float32 mono
    sample_rate: int  # 24000 for XTTS v2
    path: Path | None  # the WAV, when saved
    sidecar: Path | None  # the JSON with every parameter, when saved
    gen_seconds: float  # wall time of synthesis (voice latents + generation), model load excluded
    audio_seconds: float  # duration of the output
    rtf: float  # gen_seconds / audio_seconds (below 1 = faster than real time)
    latents_cached: bool  # the voice latents came from the cache
    model_id: str  # the model that spoke
    notices: list[str]  # things the user should know (trimmed reference, fallbacks)
    seed: int | None = None  # the seed actually used (a fresh one when options.seed was None)
    chunks: list[str] = field(default_factory=list)  # the text pieces synthesised one by one
    streamed: bool = False  # made by synthesize_stream (chunk by chunk) rather than synthesize
    first_audio_seconds: float | None = None  # streamed only: from the call to the first chunk being ready
    retakes: dict[str, Any] | None = None  # checked synthesis: every take of every sentence (RetakeReport)
    pronunciation: dict[str, Any] | None = None  # the pronunciation rules that rewrote the text, when any fired


@dataclass
class _Request:
    """One checked synthesis request (``TTSEngine._prepare``): what generation needs, nothing loaded yet."""

    text: str
    language: str
    model_id: str
    reference: list[Path]
    speaker: str | None
    options: TTSOptions
    notices: list[str]
    pronunciation: dict[str, Any] | None = None  # set by synthesize when a pronunciation rule fired


@dataclass
class _Plan:
    """What one request speaks with, worked out under the GPU lock (``TTSEngine._plan``)."""

    latent: torch.Tensor
    embedding: torch.Tensor
    cached: bool
    references: list[dict[str, Any]]
    chunks: list[str]
    seed: int
    sample_rate: int
    extra: dict[str, Any]  # generate() keywords beyond the options (token cap, stopping criteria)
    latents_seconds: float


@dataclass
class _Voice:
    """Conditioning for the GPT and the decoder, kept on the CPU."""

    gpt_cond_latent: torch.Tensor
    speaker_embedding: torch.Tensor
    references: list[dict[str, Any]]  # name, sha256, seconds, trimmed (for the sidecar)
    notices: list[str]


def check_language_packages(language: str) -> None:
    """Raise LabError when a language's text front end is not installed (before any model work)."""
    import importlib.util

    modules, hint = LANGUAGE_PACKAGES.get(language, ((), ""))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise LabError(
            f"{XTTS_LANGUAGES[language]} text needs the Python package(s) {', '.join(missing)}, which are not "
            f"installed. Install them ({hint}) and restart the app, or pick another language."
        )


def _check_range(name: str, value: float | None) -> None:
    low, high = OPTION_RANGES[name]
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InputError(f"{name} must be a number between {low:g} and {high:g}; got {value!r}.")
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}; got {value:g}.")


# The writing systems of the XTTS languages, by the first word of the characters' Unicode names.
_LATIN_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "pl", "tr", "nl", "cs", "hu")
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"LATIN"}) for code in _LATIN_LANGUAGES},
    "ru": frozenset({"CYRILLIC"}),
    "ar": frozenset({"ARABIC"}),
    "zh-cn": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL"}),
    "hi": frozenset({"DEVANAGARI"}),
}
_SCRIPT_LABELS = {
    "LATIN": "Latin",
    "CYRILLIC": "Cyrillic",
    "ARABIC": "Arabic",
    "CJK": "Chinese (Han)",
    "HIRAGANA": "Japanese (kana)",
    "KATAKANA": "Japanese (kana)",
    "HANGUL": "Korean (Hangul)",
    "DEVANAGARI": "Devanagari",
}
_SCRIPT_ADVICE = {
    "LATIN": "pick the language it is written in (" + ", ".join(_LATIN_LANGUAGES) + ")",
    "CYRILLIC": "pick Russian (ru) for Russian text",
    "ARABIC": "pick Arabic (ar)",
    "CJK": "pick Chinese (zh-cn), or Japanese (ja) for Japanese text",
    "HIRAGANA": "pick Japanese (ja)",
    "KATAKANA": "pick Japanese (ja)",
    "HANGUL": "pick Korean (ko)",
    "DEVANAGARI": "pick Hindi (hi)",
}


def _script(char: str) -> str:
    """The writing system of a letter, from its Unicode name ("LATIN", "CJK", "HANGUL", ...; "" unnamed)."""
    words = unicodedata.name(char, "").split()
    while words and words[0] in ("FULLWIDTH", "HALFWIDTH"):
        words = words[1:]
    if not words:
        return ""
    first = words[0]
    return {"KATAKANA-HIRAGANA": "KATAKANA", "IDEOGRAPHIC": "CJK"}.get(first, first)


def check_text(text: str) -> str:
    """Refuse text with nothing to say; return it stripped.

    Raises:
        InputError: empty, only invisible characters (zero-width spaces, joiners, BOMs), or no letter or
            digit at all (only punctuation, symbols or emoji).
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("The text is empty. Type what the voice should say.")
    text = text.strip()
    if any(unicodedata.category(c)[0] in "LN" for c in text):
        return text
    if all(c.isspace() or unicodedata.category(c) in ("Cf", "Cc", "Mn", "Me") for c in text):
        raise InputError(
            "The text holds only invisible characters (zero-width spaces, joiners or other formatting marks), "
            "so there is nothing to say. Type what the voice should say."
        )
    shown = text if len(text) <= 40 else text[:40] + "..."
    raise InputError(
        f"The text {shown!r} has no letters or digits, only punctuation or symbols, so there is nothing to say. "
        "Type words."
    )


def text_notices(text: str, language: str) -> list[str]:
    """Warnings about text that XTTS will speak badly; the request still runs.

    Today: text mostly written in a script the language does not use (Arabic or Chinese text with ``en``,
    Latin text with ``zh-cn``), which XTTS mispronounces or skips.

    Args:
        text: the text to speak.
        language: a normalised XTTS language code.

    Returns:
        One sentence per problem (empty when none).
    """
    expected = LANGUAGE_SCRIPTS.get(language)
    if not expected:
        return []
    counts: dict[str, int] = {}
    for char in text:
        if unicodedata.category(char).startswith("L"):
            script = _script(char)
            counts[script] = counts.get(script, 0) + 1
    letters = sum(counts.values())
    if not letters or sum(counts.get(s, 0) for s in expected) * 2 >= letters:
        return []
    script = max((s for s in counts if s not in expected), key=lambda s: counts[s])
    label = _SCRIPT_LABELS.get(script, script.title())
    advice = _SCRIPT_ADVICE.get(script, f"XTTS speaks no language written in {label} script")
    return [
        f"The text is mostly in {label} script, but the language is {XTTS_LANGUAGES[language]} ({language}): "
        f"XTTS will mispronounce it or leave it out. To fix it, {advice}."
    ]


def check_request(
    text: str,
    options: TTSOptions,
    *,
    reference: Sequence[Path] | None,
    speaker: str | None,
    max_chars: int,
    speakers: Sequence[str] | None = None,
    has_model_reference: bool = False,
) -> tuple[str, str]:
    """Validate one synthesis request before any work is done.

    Args:
        text: the text to speak.
        options: generation settings.
        reference: reference clips (may be empty when a built-in speaker is used).
        speaker: a built-in speaker name.
        max_chars: longest text accepted (settings.max_text_chars).
        speakers: the model's built-in speakers, when known (None skips the membership check).
        has_model_reference: the model folder ships a reference.wav to fall back on.

    Returns:
        (stripped text, normalised language code).

    Raises:
        InputError: with a message naming what is allowed (``check_text`` for the text itself).
    """
    text = check_text(text)
    if len(text) > max_chars:
        raise InputError(
            f"The text is {len(text)} characters long; the limit is {max_chars} (max_text_chars). "
            "Shorten it or split it into several requests."
        )
    language = xtts_language(options.language)
    check_language_packages(language)
    for name in ("temperature", "top_k", "top_p", "repetition_penalty", "length_penalty", "speed"):
        _check_range(name, getattr(options, name))
    if options.seed is not None:
        _check_range("seed", options.seed)
    if options.max_audio_tokens is not None:
        _check_range("max_audio_tokens", options.max_audio_tokens)
    if reference and speaker:
        raise InputError("Give either reference clips or a built-in speaker, not both.")
    if not reference and not speaker and not has_model_reference:
        raise InputError(
            "No voice given: upload or record a reference clip (3-10 s of clean speech), pick a saved voice, "
            "or choose a built-in speaker."
        )
    if speaker and speakers is not None:
        check_speaker(speaker, speakers)
    return text, language


def check_speaker(speaker: str, speakers: Sequence[str]) -> None:
    """Raise InputError unless ``speaker`` is one of the model's built-in speakers."""
    if speaker in speakers:
        return
    if not speakers:
        raise InputError(f"This model has no built-in speakers, so {speaker!r} cannot be used; give a reference clip.")
    shown = ", ".join(list(speakers)[:20]) + (f" and {len(speakers) - 20} more" if len(speakers) > 20 else "")
    raise InputError(f"Unknown built-in speaker {speaker!r}. This model has: {shown}.")


class TTSEngine:
    """XTTS v2 behind one model holder; safe to call from several threads (the GPU lock serialises)."""

    def __init__(self, settings: Settings, gpu_lock: threading.RLock, tiny: TinyModels | None = None) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self.tiny = tiny
        self.holder: ModelHolder[Xtts] = ModelHolder("tts")
        self._latents: OrderedDict[tuple, _Voice] = OrderedDict()
        self._latents_lock = threading.Lock()
        self._speaker_files: dict[tuple[str, int], list[str]] = {}

    # ------------------------------------------------------------------ models

    @property
    def models_dir(self) -> Path:
        return self.settings.workspace_sub("models")

    def default_model(self) -> str:
        """The tiny model in tiny mode, else settings.tts_model."""
        if self.settings.tiny_models and self.tiny is not None:
            return TINY_ID
        return self.settings.tts_model

    def list_models(self) -> list[tuple[str, str]]:
        """(label, model_id) for the model picker; workspace/models is re-scanned on each call."""
        choices: list[tuple[str, str]] = []
        if self.tiny is not None:
            choices.append(("Tiny random model (noise; for testing)", TINY_ID))
        base_here = self.find_base_model() is not None
        choices.append(("XTTS v2 base" + ("" if base_here else " (downloads ~1.9 GB on first use)"), BASE_ID))
        choices += [
            (f"{folder.name} (workspace/models)", folder.name) for folder in catalog.model_folders(self.models_dir)
        ]
        return choices

    def find_base_model(self) -> Path | None:
        """The folder holding XTTS v2's files, when already on this machine (never downloads)."""
        return catalog.find_base_model(self.settings)

    def model_dir(
        self,
        model_id: str | None = None,
        *,
        download: bool = False,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> Path | None:
        """The folder of a model id (None for the base model when it is not downloaded and download is False).

        Raises:
            MissingWeightsError: unknown folder, missing files, or the base model cannot be fetched.
            InputError: "tiny" outside tiny mode.
        """
        model_id = (model_id or self.default_model()).strip()
        if model_id == TINY_ID:
            if self.tiny is None:
                raise InputError("The tiny model exists only in tiny-model mode (start with --tiny-models).")
            return self.tiny.xtts_dir
        if model_id == BASE_ID:
            found = self.find_base_model()
            if found is not None or not download:
                return found
            return catalog.download_base(self.settings, self.models_dir, progress or no_progress, log_fn or log.info)
        path = Path(model_id).expanduser()
        folder = path if path.is_absolute() else self.models_dir / model_id
        if not folder.is_dir():
            names = [mid for _, mid in self.list_models()]
            raise MissingWeightsError(
                f"Model folder {folder} not found. A model id is {', '.join(repr(n) for n in names)}, "
                f"or a folder holding {', '.join(MODEL_FILES)}."
            )
        missing = catalog.missing_files(folder, MODEL_FILES)
        if missing:
            raise MissingWeightsError(
                f"Model folder {folder} is missing {', '.join(missing)} (an XTTS model folder holds "
                f"{', '.join(MODEL_FILES)} and optionally speakers_xtts.pth). Copy the missing files in, "
                "or re-export the model from the Finetune tab."
            )
        return folder

    def _load_from_dir(self, folder: Path, device: str) -> Xtts:
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        try:
            config = XttsConfig()
            config.load_json(str(folder / "config.json"))
            # Xtts(config) is what Xtts.init_from_config does (that alias is deprecated in coqui 0.28).
            model = Xtts(config)
            model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True, use_deepspeed=False)
        except FileNotFoundError as exc:
            raise MissingWeightsError(f"Could not load the model in {folder}: {exc}") from exc
        except (RuntimeError, KeyError, ValueError, OSError) as exc:
            raise LabError(
                f"Could not load the model in {folder} ({type(exc).__name__}: {str(exc)[:300]}). "
                "Is it an XTTS v2 model folder (config.json, model.pth, vocab.json)?"
            ) from exc
        return model.to(device)

    def load(
        self, model_id: str | None = None, progress: ProgressFn | None = None, log_fn: LogFn | None = None
    ) -> Xtts:
        """Load a model (downloading the base model on first use); unloads any other TTS model.

        Args:
            model_id: "xtts_v2", "tiny", a folder name under workspace/models or an absolute folder.
            progress: ``progress(fraction, desc=...)`` callable (gr.Progress works).
            log_fn: receives status lines.

        Returns:
            The coqui ``Xtts`` model, in eval mode, on the configured device.

        Raises:
            MissingWeightsError: the weights are not there and cannot be fetched.
        """
        model_id = (model_id or self.default_model()).strip()
        progress = progress or no_progress
        log_fn = log_fn or log_info
        device = resolve_device(self.settings.device)

        def loader(key: str, dev: str) -> Xtts:
            folder = self.model_dir(key, download=True, progress=progress, log_fn=log_fn)
            assert folder is not None  # download=True either returns a folder or raises
            log_fn(f"Loading TTS model {key} on {dev}...")
            progress(0.05, desc=f"Loading TTS model {key}")
            return self._load_from_dir(folder, dev)

        with (
            self.gpu_lock,
            oom_guard("loading the TTS model", "Free GPU memory (unload other models in the System panel)."),
        ):
            return self.holder.get(model_id, device, loader)

    def unload(self) -> bool:
        """Free the loaded TTS model. Returns True when one was loaded."""
        with self.gpu_lock:
            return self.holder.unload()

    def speakers(self, model_id: str | None = None) -> list[str]:
        """Built-in speakers of a model (read from speakers_xtts.pth; no model load, no download)."""
        model_id = (model_id or self.default_model()).strip()
        loaded = self.holder.loaded
        model = self.holder.model
        if loaded is not None and loaded.key == model_id and model is not None:
            manager = getattr(model, "speaker_manager", None)
            return list(manager.speakers) if manager is not None else []
        folder = self.model_dir(model_id)
        if folder is None or not (folder / "speakers_xtts.pth").is_file():
            return []
        path = folder / "speakers_xtts.pth"
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._speaker_files:
            self._speaker_files[key] = list(torch.load(path, map_location="cpu", weights_only=True))
        return list(self._speaker_files[key])

    def _weights_stamp(self, model_id: str) -> str:
        """Identity of the weights on disk, so cached latents never outlive a re-exported model."""
        folder = self.model_dir(model_id)
        if folder is None:
            return model_id
        stat = (folder / "model.pth").stat()
        return f"{model_id}@{stat.st_mtime_ns}:{stat.st_size}"

    # ------------------------------------------------------------------ voices (latents)

    def _decode_reference(self, path: Path) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        """Decode one clip at 22.05 kHz, refuse unusable ones (too short, silent, only a DC offset), trim long
        ones and flag clipped or repaired ones (with notices)."""
        with collect_notices() as notices:
            audio, sr = load_audio(path, sr=COND_SR, max_mb=self.settings.max_upload_mb)
        check_reference_audio(audio, sr, path.name, self.settings.min_audio_seconds)
        seconds = len(audio) / sr
        clipped = clipped_fraction(audio, CLIP_LEVEL)
        if clipped >= CLIPPED_SHARE:
            notices.append(
                f"{path.name} is heavily clipped: {100 * clipped:.0f}% of its samples sit at full scale, so the "
                "cloned voice will sound distorted. Record it again at a lower input level."
            )
        limit = self.settings.max_ref_seconds
        trimmed = seconds > limit
        if trimmed:
            audio = audio[: int(limit * sr)]
            notices.append(
                f"{path.name} is {seconds:.1f} s long; only its first {limit:g} s were used (max_ref_seconds)."
            )
        info = {"name": path.name, "seconds": round(seconds, 3), "trimmed": trimmed}
        return audio, notices, info

    def _compute_voice(self, model: Xtts, clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """What Xtts.get_conditioning_latents does, from arrays we decoded ourselves."""
        cfg = model.config
        max_ref = int(cfg.max_ref_len * COND_SR)
        embeddings, audios = [], []
        for clip in clips:
            audio = torch.from_numpy(np.ascontiguousarray(clip)).unsqueeze(0)[:, :max_ref]
            if cfg.sound_norm_refs:
                audio = (audio / torch.abs(audio).max()) * 0.75
            embeddings.append(model.get_speaker_embedding(audio, COND_SR))
            audios.append(audio)
        latent = model.get_gpt_cond_latents(
            torch.cat(audios, dim=-1), COND_SR, length=cfg.gpt_cond_len, chunk_length=cfg.gpt_cond_chunk_len
        )
        embedding = torch.stack(embeddings).mean(dim=0)
        return latent.cpu(), embedding.cpu()

    def _voice_for(self, model: Xtts, model_id: str, reference: Sequence[Path]) -> tuple[_Voice, bool]:
        """Voice latents for reference clips, from the LRU cache when the same files were seen."""
        paths = [Path(p) for p in reference]
        for p in paths:
            if not p.is_file():
                raise AudioError(f"Reference file not found: {p.name}")
        hashes = tuple(file_sha256(p) for p in paths)
        cfg = model.config
        trim = (
            self.settings.max_ref_seconds,
            self.settings.min_audio_seconds,
            cfg.max_ref_len,
            cfg.gpt_cond_len,
            cfg.gpt_cond_chunk_len,
            bool(cfg.sound_norm_refs),
        )
        key = (self._weights_stamp(model_id), hashes, trim)
        with self._latents_lock:
            voice = self._latents.get(key)
            if voice is not None:
                self._latents.move_to_end(key)
                self._trim_cache()
                return voice, True
        clips, notices, infos = [], [], []
        for p, digest in zip(paths, hashes):
            audio, clip_notices, info = self._decode_reference(p)
            clips.append(audio)
            notices.extend(clip_notices)
            # XTTS itself reads only the first max_ref_len seconds of each clip: record what was really used.
            used = min(len(audio) / COND_SR, float(cfg.max_ref_len))
            infos.append({**info, "used_seconds": round(used, 3), "sha256": digest})
        latent, embedding = self._compute_voice(model, clips)
        voice = _Voice(latent, embedding, infos, notices)
        with self._latents_lock:
            self._latents[key] = voice
            self._latents.move_to_end(key)
            self._trim_cache()
        return voice, False

    def _trim_cache(self) -> None:
        """Drop the least recently used voices beyond settings.latent_cache_size (caller holds the lock)."""
        while len(self._latents) > max(self.settings.latent_cache_size, 0):
            self._latents.popitem(last=False)

    def clear_latent_cache(self) -> int:
        """Forget every cached voice. Returns how many entries were dropped."""
        with self._latents_lock:
            count = len(self._latents)
            self._latents.clear()
        return count

    # ------------------------------------------------------------------ synthesis

    def _prepare(
        self,
        text: str,
        *,
        model_id: str | None,
        reference: Sequence[Path | str] | None,
        speaker: str | None,
        options: TTSOptions | None,
    ) -> _Request:
        """Every check that needs no model: text, language, options, voice, model folder (no load, no lock).

        Raises:
            InputError / AudioError / MissingWeightsError: see ``synthesize``.
        """
        options = options or self.settings.generation
        model_id = (model_id or self.default_model()).strip()
        refs = [Path(p) for p in (reference or [])]
        speaker = (speaker or "").strip() or None
        folder = self.model_dir(model_id)  # raises for broken folders; None = base not downloaded yet
        model_reference = folder / REFERENCE_NAME if folder is not None else None
        has_model_ref = model_reference is not None and model_reference.is_file()
        known_speakers = self.speakers(model_id) if folder is not None else None
        text, language = check_request(
            text,
            options,
            reference=refs,
            speaker=speaker,
            max_chars=self.settings.max_text_chars,
            speakers=known_speakers,
            has_model_reference=has_model_ref,
        )
        notices: list[str] = text_notices(text, language)
        if not refs and not speaker and has_model_ref:
            refs = [model_reference]
            notices.append(f"No voice given: using the model's own {REFERENCE_NAME}.")
        return _Request(text, language, model_id, refs, speaker, options, notices)

    def _plan(self, model: Xtts, req: _Request, progress: ProgressFn, stop: Any | None) -> _Plan:
        """Voice latents, text pieces, the seed (RNG seeded here) and generate() extras; caller holds the lock.

        Args:
            stop: anything with ``is_set()``; when given, GPT generation ends within one token step once set.
        """
        start = time.perf_counter()
        progress(0.1, desc="Computing the voice")
        if req.speaker:
            entry = model.speaker_manager.speakers[req.speaker]
            latent, embedding = entry["gpt_cond_latent"], entry["speaker_embedding"]
            cached, ref_info = True, []
        else:
            voice, cached = self._voice_for(model, req.model_id, req.reference)
            latent, embedding, ref_info = voice.gpt_cond_latent, voice.speaker_embedding, voice.references
            req.notices.extend(voice.notices)
        latents_seconds = time.perf_counter() - start
        options = req.options
        limit = model.tokenizer.char_limits.get(req.language.split("-")[0], DEFAULT_CHAR_LIMIT)
        chunks = split_text(req.text, req.language, limit, per_sentence=options.split_sentences)
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        _seed_everything(seed)
        extra: dict[str, Any] = {}
        if options.max_audio_tokens is not None:
            _quiet_transformers()
            extra["max_new_tokens"] = int(min(options.max_audio_tokens, model.gpt.max_gen_mel_tokens))
        if stop is not None:
            extra["stopping_criteria"] = _cancel_criteria(stop)
        sr = int(model.args.output_sample_rate)
        return _Plan(latent, embedding, cached, ref_info, chunks, seed, sr, extra, latents_seconds)

    @contextlib.contextmanager
    def _generating(
        self,
        req: _Request,
        progress: ProgressFn,
        log_fn: LogFn,
        stop: threading.Event | None,
        on_lock: Callable[[], None] | None = None,
    ) -> Iterator[tuple[Xtts, _Plan, float, float]]:
        """What every synthesis opens with: under the GPU lock (``on_lock`` runs once it is held), load the model,
        check the speaker, and plan inside the OOM guard, which stays on for the caller's generation.

        Yields:
            (model, plan, load seconds, the time generation started: before the voice latents)
        """
        with self.gpu_lock:
            if on_lock is not None:
                on_lock()
            load_start = time.perf_counter()
            model = self.load(req.model_id, progress=progress, log_fn=log_fn)
            load_seconds = time.perf_counter() - load_start
            if req.speaker:
                check_speaker(req.speaker, self.speakers(req.model_id))
            with oom_guard(
                "speech synthesis",
                "Use shorter text, turn on sentence splitting, or free GPU memory "
                "(unload other models in the System panel).",
            ):
                start = time.perf_counter()
                yield model, self._plan(model, req, progress, stop), load_seconds, start

    def synthesize(
        self,
        text: str,
        *,
        model_id: str | None = None,
        reference: list[Path] | None = None,
        speaker: str | None = None,
        options: TTSOptions | None = None,
        save: bool = True,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
        cancel: threading.Event | None = None,
        retakes: RetakeChecker | None = None,
        pronunciation: PronunciationMap | None = None,
    ) -> TTSResult:
        """Speak ``text`` in the voice of the reference clips (or a built-in speaker).

        Args:
            text: up to settings.max_text_chars characters.
            model_id: see ``load``; None = default_model().
            reference: clips of the target voice, any format/rate/channels; several are averaged.
            speaker: a built-in speaker (``speakers()``) instead of reference clips.
            options: generation settings (seeded: same seed, same audio); None = ``settings.generation``.
            save: write workspace/outputs/tts/<timestamp>_<slug>.wav and a JSON sidecar.
            progress: ``progress(fraction, desc=...)`` callable.
            log_fn: receives status lines.
            cancel: set by the caller to give up (e.g. its client went away): generation stops within one
                token step and ``CancelledError`` is raised; nothing is saved, and the GPU is free again.
            retakes: check every sentence with Whisper and retake failing ones (``engines.tts.retakes``); the
                record of every take is ``result.retakes`` and goes into the sidecar.
            pronunciation: rewrite the text first (``engines.tts.pronounce``); what fired is recorded.

        Returns:
            TTSResult with 24 kHz audio, timings and notices.

        Raises:
            InputError / AudioError: bad text, language, options or reference clips.
            MissingWeightsError: the model's files are missing.
            GPUOutOfMemoryError: the GPU ran out of memory.
        """
        progress = progress or no_progress
        log_fn = log_fn or log_info
        # Validate before loading anything: cheap answers for bad input.
        text, spoken = self._pronounce(text, options, pronunciation)
        req = self._prepare(text, model_id=model_id, reference=reference, speaker=speaker, options=options)
        req.pronunciation = spoken
        model_id, options = req.model_id, req.options
        if retakes is not None:
            retakes.check_language(req.language)
        checked: list[SentenceTakes] = []

        with self._generating(req, progress, log_fn, cancel) as (model, plan, load_seconds, start):
            chunks, sr = plan.chunks, plan.sample_rate
            pause = np.zeros(int(PAUSE_SECONDS * sr), dtype=np.float32)
            pieces: list[np.ndarray] = []
            for i, chunk in enumerate(chunks):
                _check_cancel(cancel)
                progress(0.15 + 0.85 * i / len(chunks), desc=f"Sentence {i + 1}/{len(chunks)}")
                if retakes is None:
                    wav = self._speak_chunk(
                        model, chunk, req.language, plan.latent, plan.embedding, options, plan.extra
                    )
                else:
                    wav = self._checked_chunk(model, req, plan, i, chunk, retakes, checked, cancel)
                _check_cancel(cancel)
                if pieces:
                    pieces.append(pause)
                pieces.append(wav)
            audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
            gen_seconds = time.perf_counter() - start
        progress(1.0, desc="Done")
        report = retakes.report(checked) if retakes is not None else None
        if report is not None and (report.retaken or report.failed):
            req.notices.append(report.summary())
        return self._finish(
            req, plan, audio, gen_seconds, load_seconds, save=save, retakes=report.as_dict() if report else None
        )

    # ---- checked synthesis and pronunciation (issue 22): small hooks; the logic is in retakes / pronounce

    def _pronounce(
        self, text: str, options: TTSOptions | None, pronunciation: PronunciationMap | None
    ) -> tuple[str, dict[str, Any] | None]:
        """The text as the pronunciation map says to speak it, and the record of the rules that fired."""
        if not pronunciation or not isinstance(text, str):
            return text, None
        language = xtts_language((options or self.settings.generation).language)
        return pronunciation.record(text, language)

    def _checked_chunk(
        self,
        model: Xtts,
        req: _Request,
        plan: _Plan,
        index: int,
        chunk: str,
        retakes: RetakeChecker,
        checked: list[SentenceTakes],
        cancel: threading.Event | None,
    ) -> np.ndarray:
        """One sentence through the retake loop: take 0 continues the request's random stream, retake k is
        seeded with ``take_seed`` and leaves the stream as take 0 left it."""

        def speak(take: int) -> tuple[np.ndarray, int]:
            if take == 0:
                args = (model, chunk, req.language, plan.latent, plan.embedding, req.options, plan.extra)
                return self._speak_chunk(*args), plan.seed
            _check_cancel(cancel)
            seed = take_seed(plan.seed, index, take)
            with reseeded(seed):
                wav = self._speak_chunk(
                    model, chunk, req.language, plan.latent, plan.embedding, req.options, plan.extra
                )
            return wav, seed

        wav, record = retakes.best(speak, chunk, req.language, plan.sample_rate, index)
        checked.append(record)
        return wav

    def _finish(
        self,
        req: _Request,
        plan: _Plan,
        audio: np.ndarray,
        gen_seconds: float,
        load_seconds: float,
        *,
        save: bool,
        first_audio_seconds: float | None = None,
        retakes: dict[str, Any] | None = None,
    ) -> TTSResult:
        """The result of a finished generation (saved when asked), logged in one line."""
        audio_seconds = len(audio) / plan.sample_rate
        result = TTSResult(
            audio=audio,
            sample_rate=plan.sample_rate,
            path=None,
            sidecar=None,
            gen_seconds=gen_seconds,
            audio_seconds=audio_seconds,
            rtf=gen_seconds / audio_seconds if audio_seconds > 0 else float("inf"),
            latents_cached=plan.cached,
            model_id=req.model_id,
            notices=req.notices,
            seed=plan.seed,
            chunks=plan.chunks,
            streamed=first_audio_seconds is not None,
            first_audio_seconds=first_audio_seconds,
            retakes=retakes,
            pronunciation=req.pronunciation,
        )
        if save:
            self._save(
                result,
                text=req.text,
                language=req.language,
                speaker=req.speaker,
                references=plan.references,
                options=req.options,
                load_seconds=load_seconds,
                latents_seconds=plan.latents_seconds,
            )
        _logger.info(
            "TTS %s%s: %.2f s of audio in %.2f s (RTF %.2f, %d chunk(s), latents %s%s)",
            req.model_id,
            " (streamed)" if result.streamed else "",
            audio_seconds,
            gen_seconds,
            result.rtf,
            len(plan.chunks),
            "cached" if plan.cached else "computed",
            f", first audio after {first_audio_seconds:.2f} s" if first_audio_seconds is not None else "",
        )
        return result

    def synthesize_stream(
        self,
        text: str,
        *,
        model_id: str | None = None,
        reference: list[Path] | None = None,
        speaker: str | None = None,
        options: TTSOptions | None = None,
        save: bool = True,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
        cancel: threading.Event | None = None,
        pronunciation: PronunciationMap | None = None,
    ) -> SynthesisStream:
        """Speak ``text`` chunk by chunk as it is generated (XTTS ``inference_stream``, sentence by sentence).

        Every input check runs here, before the stream is returned, so a caller can refuse bad input before
        it sends anything. Generation starts at the first ``next()`` and runs in its own thread, holding the
        GPU lock until the last chunk is generated or the stream is closed. Sentences are joined with the
        same pause as ``synthesize``; the options (seed included) mean what they mean there, though a
        streamed clip is not sample-equal to a non-streamed one (the latents come from the sampling pass,
        not a second GPT pass).

        Args:
            text, model_id, reference, speaker, options, save, progress, log_fn, pronunciation: as for
                ``synthesize`` (retakes are not offered while streaming).
            cancel: set by the caller to give up: the stream raises ``CancelledError``, nothing is saved.

        Returns:
            A ``SynthesisStream``: iterate it for float32 chunks; ``.result`` once it is exhausted.

        Raises:
            InputError / AudioError / MissingWeightsError: bad input, before anything is generated.
        """
        started = time.perf_counter()
        text, spoken = self._pronounce(text, options, pronunciation)
        req = self._prepare(text, model_id=model_id, reference=reference, speaker=speaker, options=options)
        req.pronunciation = spoken
        progress = progress or no_progress
        log_fn = log_fn or log_info

        def finish(audio: np.ndarray, done: dict[str, Any]) -> TTSResult:
            return self._finish(
                req,
                done["plan"],
                audio,
                done["gen_seconds"],
                done["load_seconds"],
                save=save,
                first_audio_seconds=done["first_audio_seconds"],
            )

        return SynthesisStream(
            lambda feed: self._generate_stream(req, feed, progress, log_fn, started), finish, cancel=cancel
        )

    def _generate_stream(
        self, req: _Request, feed: StreamFeed, progress: ProgressFn, log_fn: LogFn, started: float
    ) -> dict[str, Any]:
        """The producer of ``synthesize_stream`` (its own thread): load, plan, and emit sentence by sentence
        under the GPU lock."""
        with self._generating(req, progress, log_fn, feed.stopping, on_lock=feed.check) as (
            model,
            plan,
            load_seconds,
            start,
        ):
            feed.sample_rate = plan.sample_rate
            pause = np.zeros(int(PAUSE_SECONDS * plan.sample_rate), dtype=np.float32)
            for i, chunk in enumerate(plan.chunks):
                feed.check()
                progress(0.15 + 0.85 * i / len(plan.chunks), desc=f"Sentence {i + 1}/{len(plan.chunks)}")
                if i:
                    feed.emit(pause)
                pieces = self._stream_sentence(model, chunk, req.language, plan, req.options)
                try:
                    for wav in pieces:
                        feed.check()  # closed mid-sentence: no further vocoder pass for it
                        feed.emit(wav)
                finally:
                    pieces.close()
                feed.check()
            gen_seconds = time.perf_counter() - start
        progress(1.0, desc="Done")
        first = feed.first_chunk_at if feed.first_chunk_at is not None else time.perf_counter()
        return {
            "plan": plan,
            "gen_seconds": gen_seconds,
            "load_seconds": load_seconds,
            "first_audio_seconds": first - started,
        }

    def _stream_sentence(
        self, model: Xtts, chunk: str, language: str, plan: _Plan, options: TTSOptions
    ) -> Iterator[np.ndarray]:
        """One sentence through ``inference_stream``: float32 chunks, crossfaded by coqui's handle_chunks."""
        try:
            # Every option is passed: inference_stream's defaults (0.75 / 10.0) are not XttsConfig's.
            for wav in model.inference_stream(
                chunk,
                language,
                plan.latent,
                plan.embedding,
                stream_chunk_size=STREAM_CHUNK_TOKENS,
                overlap_wav_len=STREAM_OVERLAP_SAMPLES,
                temperature=options.temperature,
                length_penalty=options.length_penalty,
                repetition_penalty=options.repetition_penalty,
                top_k=options.top_k,
                top_p=options.top_p,
                do_sample=True,
                speed=options.speed,
                enable_text_splitting=False,
                **plan.extra,
            ):
                yield wav.detach().float().cpu().numpy().reshape(-1).astype(np.float32, copy=False)
        except ImportError as exc:
            raise _language_error(language, exc) from exc
        except AssertionError as exc:
            raise InputError(f"A sentence is too long for XTTS ({len(chunk)} characters); split it up.") from exc

    @staticmethod
    def _speak_chunk(
        model: Xtts,
        chunk: str,
        language: str,
        latent: torch.Tensor,
        embedding: torch.Tensor,
        options: TTSOptions,
        extra: dict[str, Any],
    ) -> np.ndarray:
        try:
            out = model.inference(
                chunk,
                language,
                latent,
                embedding,
                temperature=options.temperature,
                length_penalty=options.length_penalty,
                repetition_penalty=options.repetition_penalty,
                top_k=options.top_k,
                top_p=options.top_p,
                speed=options.speed,
                enable_text_splitting=False,
                **extra,
            )
        except ImportError as exc:  # coqui's text front end imports language packages lazily
            raise _language_error(language, exc) from exc
        except AssertionError as exc:  # coqui asserts on > 400 text tokens
            raise InputError(f"A sentence is too long for XTTS ({len(chunk)} characters); split it up.") from exc
        return np.asarray(out["wav"], dtype=np.float32).reshape(-1)

    def _save(
        self,
        result: TTSResult,
        *,
        text: str,
        language: str,
        speaker: str | None,
        references: list[dict[str, Any]],
        options: TTSOptions,
        load_seconds: float,
        latents_seconds: float,
    ) -> None:
        folder = self.settings.workspace_sub("outputs", "tts")
        stem = f"{name_stamp(millis=True)}_{slug(text.lower(), 40, fallback='tts')}"
        wav_path = folder / f"{stem}.wav"
        n = 2
        while wav_path.exists() or wav_path.with_suffix(".json").exists():
            wav_path = folder / f"{stem}-{n}.wav"
            n += 1
        save_wav(wav_path, result.audio, result.sample_rate)
        loaded = self.holder.loaded
        sidecar = {
            "created": utc_now(),
            "file": wav_path.name,
            "text": text,
            "language": language,
            "model_id": result.model_id,
            "model_dir": str(self.model_dir(result.model_id) or ""),
            "device": loaded.device if loaded else None,
            "speaker": speaker,
            "references": references,
            "options": asdict(options),
            "seed_used": result.seed,
            "chunks": result.chunks,
            "sample_rate": result.sample_rate,
            "timings": {
                "model_load_seconds": round(load_seconds, 3),
                "latents_seconds": round(latents_seconds, 3),
                "gen_seconds": round(result.gen_seconds, 3),
                "audio_seconds": round(result.audio_seconds, 3),
                "rtf": round(result.rtf, 4),
                "first_audio_seconds": (
                    round(result.first_audio_seconds, 3) if result.first_audio_seconds is not None else None
                ),
            },
            "streamed": result.streamed,
            "latents_cached": result.latents_cached,
            "notices": result.notices,
            "versions": versions(),
            "tiny_model": result.model_id == TINY_ID,
            "retakes": result.retakes,
            "pronunciation": result.pronunciation,
        }
        json_path = write_json(wav_path.with_suffix(".json"), sidecar)
        result.path, result.sidecar = wav_path, json_path

    # ------------------------------------------------------------------ speaker embedding (Eval's SIM)

    def speaker_embedding(
        self, audio: Path | np.ndarray, sr: int | None = None, model_id: str | None = None
    ) -> np.ndarray:
        """XTTS's speaker-encoder embedding of a clip, L2-normalised (512 values).

        A file is a reference clip and is read the way synthesis reads it: decoded and refused like a
        reference (``_decode_reference``), then cut to the model's ``max_ref_len`` and level-normalised when
        the model asks for it, exactly as ``_compute_voice`` does. So a 12-minute reference costs what its
        first seconds cost, and SIM compares against the voice the model was really given. An array (a
        generated clip) is embedded whole.

        Args:
            audio: a reference file path, or a mono float array.
            sr: the array's sample rate (required with an array).
            model_id: whose speaker encoder to use; None = the loaded or default model.

        Returns:
            float32 vector of unit length.

        Raises:
            InputError / AudioError: no sample rate, empty, too short or silent audio.
        """
        reference = isinstance(audio, str | Path)
        if reference:
            samples, _notices, _info = self._decode_reference(Path(audio))
            sr = COND_SR
        else:
            if sr is None:
                raise InputError("speaker_embedding: give the sample rate of the array (sr=...).")
            samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        if samples.size < MIN_EMBED_SECONDS * sr:
            raise AudioError(
                f"Audio of {samples.size / sr:.2f} s is too short for a speaker embedding "
                f"(at least {MIN_EMBED_SECONDS:g} s)."
            )
        if model_id is None and self.holder.loaded is not None:
            model_id = self.holder.loaded.key
        with self.gpu_lock:
            model = self.load(model_id)
            with oom_guard("the speaker embedding", "Free GPU memory (System panel)."):
                tensor = torch.from_numpy(np.ascontiguousarray(samples)).unsqueeze(0)
                if reference:  # the part of the clip synthesis conditions on (see _compute_voice)
                    tensor = tensor[:, : int(model.config.max_ref_len * COND_SR)]
                    if model.config.sound_norm_refs:
                        tensor = (tensor / torch.abs(tensor).max()) * 0.75
                emb = model.get_speaker_embedding(tensor, int(sr)).reshape(-1).float().cpu().numpy()
        norm = float(np.linalg.norm(emb))
        return (emb / norm if norm > 0 else emb).astype(np.float32)

    # ------------------------------------------------------------------ saved voices

    def _voice_roots(self) -> list[Path]:
        return [self.settings.workspace_sub("voices"), self.settings.path("samples_dir") / "voices"]

    @staticmethod
    def _audio_files(folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)

    def list_voices(self) -> list[str]:
        """Saved voices (workspace/voices) then shipped ones (samples/voices), by name."""
        names: list[str] = []
        for root in self._voice_roots():
            if not root.is_dir():
                continue
            for folder in sorted(root.iterdir(), key=lambda p: p.name.lower()):
                if folder.name not in names and not folder.name.startswith(".") and self._audio_files(folder):
                    names.append(folder.name)
        return names

    def voice_files(self, name: str) -> list[Path]:
        """The reference clips of a saved voice.

        Raises:
            InputError: unknown or unsafe name.
        """
        name = check_voice_name(name)
        for root in self._voice_roots():
            files = self._audio_files(root / name)
            if files:
                return files
        known = ", ".join(self.list_voices()) or "none yet"
        raise InputError(f"No saved voice named {name!r}. Saved voices: {known}.")

    def save_voice(self, name: str, files: Sequence[Path | str], overwrite: bool = False) -> Path:
        """Copy reference clips to workspace/voices/<name>/ after checking each one is usable.

        Args:
            name: folder name (letters, digits, spaces, '-', '_', '.'; no separators or '..').
            files: audio clips of one speaker.
            overwrite: replace an existing voice of that name.

        Returns:
            The voice folder.

        Raises:
            InputError / AudioError: bad name, no files, unusable clip, or the name is taken.
        """
        name = check_voice_name(name)
        paths = [Path(f) for f in files or [] if f]
        if not paths:
            raise InputError("No clips to save: upload or record a reference clip first.")
        for p in paths:
            self._decode_reference(p)  # refuse non-audio, too short and silent clips now, not at synthesis
        root = self.settings.workspace_sub("voices")
        target = root / name
        if target.exists() and not overwrite:
            raise InputError(f"A voice named {name!r} already exists; choose another name.")
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
        try:
            used: set[str] = set()
            for p in paths:
                base = re.sub(r"[^\w.-]+", "_", p.stem).strip("._") or "clip"
                candidate, n = f"{base}{p.suffix.lower()}", 2
                while candidate in used:
                    candidate, n = f"{base}-{n}{p.suffix.lower()}", n + 1
                used.add(candidate)
                shutil.copy2(p, staging / candidate)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        log.info("Saved voice %s (%d clip(s)) in %s", name, len(paths), target)
        return target

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """What the System panel shows about TTS."""
        loaded = self.holder.loaded
        with self._latents_lock:
            entries = len(self._latents)
        return {
            "loaded_model": loaded.key if loaded else None,
            "device": loaded.device if loaded else resolve_device(self.settings.device),
            "load_seconds": round(loaded.load_seconds, 2) if loaded else None,
            "latent_cache_entries": entries,
            "latent_cache_size": self.settings.latent_cache_size,
        }


class _QuietMaxNewTokens(logging.Filter):
    """coqui's GPT.generate always sets max_length; our max_new_tokens cap wins, and transformers says so on
    every call. Drop that one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("max_new_tokens" in message and "max_length" in message)


_QUIET_FILTER = _QuietMaxNewTokens()


def _quiet_transformers() -> None:
    target = logging.getLogger("transformers.generation.utils")
    if _QUIET_FILTER not in target.filters:
        target.addFilter(_QUIET_FILTER)


def check_reference_audio(audio: np.ndarray, sr: int, name: str, min_seconds: float) -> None:
    """The one rule for unusable reference clips, used by synthesis and by the eval planner (torch-free).

    Raises:
        AudioError: shorter than ``min_seconds``, silent, or loud only because of a constant (DC) offset.
    """
    seconds = len(audio) / sr
    if seconds < min_seconds:
        raise AudioError(
            f"{name} is {seconds:.2f} s long; reference clips must be at least {min_seconds:g} s "
            "(3-10 s of clean speech works best)."
        )
    if is_silent(audio):
        raise AudioError(
            f"{name} is silent (level {rms_dbfs(audio):.0f} dBFS); record or upload 3-10 s of clean speech "
            "from one speaker."
        )
    offset = float(np.mean(audio, dtype=np.float64))
    if is_silent(audio - offset):  # loud only because of a constant: a broken recording, no sound
        raise AudioError(
            f"{name} holds no sound, only a constant offset (DC {offset:+.2f}; what varies is at "
            f"{rms_dbfs(audio - offset):.0f} dBFS). Check the microphone and record or upload 3-10 s of clean "
            "speech from one speaker."
        )


def _language_error(language: str, exc: ImportError) -> LabError:
    return LabError(
        f"{XTTS_LANGUAGES[language]} text cannot be prepared: {exc}. "
        f"{LANGUAGE_PACKAGES.get(language, ((), 'Install the missing package'))[1]}."
    )


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError("Generation was cancelled (the request was abandoned); nothing was saved.")


def _cancel_criteria(cancel: Any) -> Any:
    """A transformers stopping criterion that ends XTTS's GPT generation as soon as ``cancel`` (anything with
    ``is_set()``: a threading.Event, a stream's ``stopping``) is set."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancelled()])


def _seed_everything(seed: int) -> None:
    """Same seed, same audio: XTTS samples with torch's RNG (random/numpy seeded for any helper)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
