"""Speech recognition with OpenAI Whisper: one resident model, file/array/batch transcription, subtitle writers.

``ASREngine`` runs from a script or a notebook without the UI::

    engine = ASREngine(load_settings(), threading.RLock())
    t = engine.transcribe_file("talk.m4a", ASROptions(language="en"))
    save_outputs(t, Path("out"), "talk")      # talk.txt / .srt / .vtt / .json
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import WHISPER_SIZES, Settings
from engines.audio import load_audio, rms_dbfs, write_text
from engines.device import oom_guard, resolve_device
from engines.errors import AudioError, InputError, LabError, MissingWeightsError
from engines.holder import ModelHolder
from engines.tiny import TinyModels

if TYPE_CHECKING:
    import torch
    import whisper

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Whisper's input rate
TINY_MODEL_ID = "tiny-random"
TASKS = ("transcribe", "translate")

# Whisper's own defaults for "this 30 s window holds no speech" (transcribe(no_speech_threshold=0.6,
# logprob_threshold=-1.0)). The sequential path hands them to whisper.transcribe, the batched path
# applies the same rule to each decode result, so both drop the same windows.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0

# Energy check before decoding: a silent or perfectly steady signal (hiss, hum, a tone) makes Whisper
# hallucinate ("Thank you.", "Subtitles by ..."), so it is never decoded. Speech swings its level by
# 20-40 dB between syllables and pauses; steady noise stays within a few dB.
SILENCE_DBFS = -50.0  # whole-signal RMS below this = silence
STEADY_SPREAD_DB = 3.0  # 90th - 10th percentile of 30 ms frame levels below this = steady noise
_FRAME = 480  # 30 ms at 16 kHz

# The tiny random model never emits end-of-text, so every window would run to Whisper's 224-token limit of
# gibberish; capping it keeps tiny-mode runs (tests, UI checks, the eval loop) fast. Real models are not capped.
TINY_MAX_TOKENS = 32

OOM_ADVICE = "Pick a smaller Whisper model, a smaller beam or batch, or unload the TTS model (System panel)."


@dataclass(frozen=True)
class ASROptions:
    """How to decode (whisper.transcribe / DecodingOptions)."""

    language: str | None = None  # None = auto-detect; a Whisper code ("en"), "zh-cn", or a language name
    task: str = "transcribe"  # or "translate" (to English)
    word_timestamps: bool = False  # per-word start/end via cross-attention alignment
    beam_size: int | None = None  # None = greedy; beam search only applies at temperature 0
    temperature: float = 0.0  # one value, no fallback ladder: reruns give the same text
    segment_timestamps: bool = True  # False = text-only decoding, one segment per 30 s window
    # (what transcribe_batch does for clips under 30 s; set False to compare with it exactly)
    max_tokens: int | None = None  # cap on decoded tokens per 30 s window (benchmarks, tiny mode); None = 224


@dataclass
class Word:
    start: float  # seconds from the start of the audio
    end: float
    word: str  # with its leading space, as Whisper returns it
    probability: float


@dataclass
class Segment:
    start: float  # seconds
    end: float
    text: str
    words: list[Word] | None = None  # only with word_timestamps
    avg_logprob: float | None = None  # mean token log-probability of the window it came from (confidence)
    no_speech_prob: float | None = None  # Whisper's probability that its window holds no speech


@dataclass
class Transcript:
    text: str  # all segments joined, stripped
    language: str | None  # Whisper code, detected or forced (None when nothing was decoded)
    segments: list[Segment]
    audio_seconds: float
    seconds: float  # processing time, model loading excluded
    rtf: float  # seconds / audio_seconds (below 1 = faster than real time)
    notice: str | None = None  # e.g. why the text is empty
    source: str | None = None  # file name or caller's label


@dataclass
class _Pending:
    """A short clip on its way through the batched path."""

    index: int
    audio_seconds: float
    detect_mel: torch.Tensor  # first 30 s of the padded mel, as whisper.transcribe detects language on
    decode_mel: torch.Tensor  # content frames zero-padded to 30 s, as whisper.transcribe decodes
    duration: float  # content duration (segment end), as whisper.transcribe reports it
    language: str | None = None
    seconds: float = 0.0


def whisper_languages() -> dict[str, str]:
    """Whisper's language codes -> English names (99 languages)."""
    from whisper.tokenizer import LANGUAGES

    return dict(LANGUAGES)


def normalize_language(language: str | None) -> str | None:
    """Map a language choice to a Whisper code.

    Args:
        language: None/""/"auto" (detect), a Whisper code ("de"), XTTS's "zh-cn", or a name ("German").

    Returns:
        The Whisper code, or None for auto-detect.

    Raises:
        InputError: an unknown language.
    """
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    if language is None:
        return None
    code = language.strip().lower()
    if code in ("", "auto"):
        return None
    if code.startswith("zh"):  # XTTS says zh-cn, Whisper says zh
        code = "zh"
    if code in LANGUAGES:
        return code
    if code in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[code]
    raise InputError(
        f"Unknown language {language!r}: use 'auto' or a Whisper language code such as "
        f"{', '.join(list(LANGUAGES)[:12])}, ..."
    )


def check_options(options: ASROptions) -> ASROptions:
    """Validate options at the boundary and normalise the language.

    Raises:
        InputError: what is wrong and what is allowed.
    """
    if options.task not in TASKS:
        raise InputError(f"Unknown task {options.task!r}; use 'transcribe' or 'translate'.")
    if options.beam_size is not None and not 1 <= int(options.beam_size) <= 16:
        raise InputError(f"Beam size must be between 1 and 16 (or empty for greedy), got {options.beam_size}.")
    if not 0.0 <= float(options.temperature) <= 1.0:
        raise InputError(f"Temperature must be between 0 and 1, got {options.temperature}.")
    if options.max_tokens is not None and not 1 <= int(options.max_tokens) <= 224:
        raise InputError(f"max_tokens must be between 1 and 224 (Whisper's window limit), got {options.max_tokens}.")
    beam = None if options.beam_size is None else int(options.beam_size)
    return dataclasses.replace(
        options, language=normalize_language(options.language), beam_size=beam, temperature=float(options.temperature)
    )


def no_speech_reason(audio: np.ndarray) -> str | None:
    """Energy check before decoding: why this audio holds no speech, or None when it may.

    Args:
        audio: mono samples at 16 kHz.

    Returns:
        A short reason ("it is silent (-inf dBFS)", ...) or None.
    """
    level = rms_dbfs(audio)
    if level < SILENCE_DBFS:
        return f"it is silent ({level:.0f} dBFS)"
    n = len(audio) // _FRAME
    if n >= 4:
        frames = audio[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)
        frame_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        spread = float(np.percentile(frame_db, 90) - np.percentile(frame_db, 10))
        if spread < STEADY_SPREAD_DB:
            return f"its level never changes (spread {spread:.1f} dB), like steady noise or hum"
    return None


def window_is_silent(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's rule for a window without speech: no-speech likely and the decoded text improbable."""
    return no_speech_prob > NO_SPEECH_THRESHOLD and not avg_logprob > LOGPROB_THRESHOLD


def _as_mono(audio: np.ndarray, source: str | None) -> np.ndarray:
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 2:  # (samples, channels) or (channels, samples): average the short axis
        array = array.mean(axis=int(np.argmin(array.shape)))
    if array.ndim != 1:
        raise AudioError(f"{source or 'Audio'}: expected mono samples, got an array of shape {array.shape}.")
    if array.size == 0:
        raise AudioError(f"{source or 'Audio'} holds no samples.")
    if not np.isfinite(array).all():
        array = np.nan_to_num(array)
    return np.ascontiguousarray(array)


def _empty(audio_seconds: float, seconds: float, language: str | None, notice: str, source: str | None) -> Transcript:
    return Transcript(
        text="",
        language=language,
        segments=[],
        audio_seconds=audio_seconds,
        seconds=seconds,
        rtf=seconds / audio_seconds if audio_seconds else 0.0,
        notice=notice,
        source=source,
    )


def _label(source: str | None) -> str:
    return source or "the audio"


class ASREngine:
    """Whisper behind one ModelHolder: lazy load, unload on switch, every model call under the GPU lock."""

    def __init__(self, settings: Settings, gpu_lock: threading.RLock, tiny: TinyModels | None = None) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self.tiny = tiny
        self.holder: ModelHolder[whisper.Whisper] = ModelHolder("asr")

    # ----- models -----

    @property
    def cache_dir(self) -> Path:
        """Where Whisper sizes are downloaded to / looked up in."""
        if self.settings.whisper_cache_dir is not None:
            return self.settings.path("whisper_cache_dir")
        return Path(os.getenv("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "whisper"

    @property
    def models_dir(self) -> Path:
        """Local checkpoints (*.pt) the model picker lists: workspace/models/whisper/."""
        return self.settings.workspace_dir / "models" / "whisper"

    @property
    def outputs_dir(self) -> Path:
        return self.settings.workspace_sub("outputs", "asr")

    def default_model(self) -> str:
        """The tiny model in tiny mode, else ``settings.asr_model``."""
        if self.settings.tiny_models and self.tiny is not None:
            return TINY_MODEL_ID
        return self.settings.asr_model

    def list_models(self) -> list[tuple[str, str]]:
        """(label, model_id) pairs: the tiny model (tiny mode), the Whisper sizes, then local .pt files."""
        import whisper

        models: list[tuple[str, str]] = []
        if self.settings.tiny_models and self.tiny is not None:
            models.append(("tiny-random (random weights: gibberish)", TINY_MODEL_ID))
        for size in WHISPER_SIZES:
            url = whisper._MODELS.get(size)
            cached = url is not None and (self.cache_dir / os.path.basename(url)).is_file()
            models.append((f"{size} (downloaded)" if cached else size, size))
        if self.models_dir.is_dir():
            for path in sorted(self.models_dir.glob("*.pt")):
                models.append((f"{path.name} (local)", str(path)))
        return models

    def _checkpoint(self, model_id: str) -> str:
        """What to hand whisper.load_model: a size name or an existing .pt path."""
        if model_id in WHISPER_SIZES:
            return model_id
        if model_id == TINY_MODEL_ID:
            if self.tiny is None:
                raise InputError("'tiny-random' exists only in tiny-model mode (--tiny-models).")
            return str(self.tiny.whisper_path)
        path = Path(model_id).expanduser()
        candidates = (
            [path]
            if path.is_absolute()
            else [self.models_dir / path, self.models_dir / f"{model_id}.pt", Path.cwd() / path]
        )
        for candidate in candidates:
            if candidate.is_file():
                return str(candidate)
        raise MissingWeightsError(
            f"Whisper checkpoint {model_id!r} not found (looked for {', '.join(str(c) for c in candidates)}). "
            f"Use a size ({', '.join(WHISPER_SIZES[:6])}, ...) or put a .pt file in {self.models_dir}."
        )

    def _load(self, model_id: str, device: str) -> whisper.Whisper:
        import whisper

        target = self._checkpoint(model_id)
        try:
            model = whisper.load_model(target, device=device, download_root=str(self.cache_dir))
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise MissingWeightsError(self._missing_message(model_id, f"the download failed ({exc})")) from exc
        except RuntimeError as exc:
            if "SHA256" in str(exc):
                raise MissingWeightsError(self._missing_message(model_id, "the downloaded file is corrupt")) from exc
            if "out of memory" in str(exc).lower():
                raise
            raise self._not_a_checkpoint(model_id, target, exc) from exc
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types (UnpicklingError, KeyError, EOFError)
            raise self._not_a_checkpoint(model_id, target, exc) from exc
        model.eval()
        return model

    def _not_a_checkpoint(self, model_id: str, target: str, exc: BaseException) -> LabError:
        if model_id in WHISPER_SIZES:
            return MissingWeightsError(self._missing_message(model_id, f"the cached file is unreadable ({exc})"))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return InputError(
            f"{target} is not a Whisper checkpoint this version can load "
            f"(expects {{'dims', 'model_state_dict'}}): {type(exc).__name__}: {first}"
        )

    def _missing_message(self, size: str, why: str) -> str:
        import whisper

        filename = os.path.basename(whisper._MODELS[size])
        expected = self.cache_dir / filename
        return (
            f"Whisper model '{size}' is not on disk and {why}. Expected file: {expected}. "
            f"On a machine with internet run: python -c \"import whisper; whisper.load_model('{size}')\" "
            f"and copy ~/.cache/whisper/{filename} to {self.cache_dir} (or set whisper_cache_dir)."
        )

    def load(self, model_id: str | None = None, progress: Callable[..., Any] | None = None) -> whisper.Whisper:
        """Load (or reuse) a Whisper model; a different id unloads the previous one first.

        Args:
            model_id: a size from WHISPER_SIZES, "tiny-random" (tiny mode) or a .pt path; None = default.
            progress: optional ``progress(fraction, desc)`` callable (gr.Progress works).

        Returns:
            The loaded whisper model.

        Raises:
            MissingWeightsError: weights neither on disk nor downloadable (names the expected file).
            InputError: an id that is not a Whisper checkpoint.
        """
        model_id = model_id or self.default_model()
        device = resolve_device(self.settings.device)
        loaded = self.holder.loaded
        if progress is not None and (loaded is None or loaded.key != model_id):
            progress(0.0, f"Loading Whisper {model_id}")
        with self.gpu_lock, oom_guard(f"loading Whisper {model_id}", OOM_ADVICE):
            return self.holder.get(model_id, device, self._load)

    def unload(self) -> bool:
        """Drop the resident model. Returns True when one was loaded."""
        return self.holder.unload()

    def status(self) -> dict[str, Any]:
        """What the System panel shows: the resident model, where it lives, the folders used."""
        loaded = self.holder.loaded
        return {
            "loaded_model": loaded.key if loaded else None,
            "device": loaded.device if loaded else resolve_device(self.settings.device),
            "load_seconds": round(loaded.load_seconds, 2) if loaded else None,
            "default_model": self.default_model(),
            "cache_dir": str(self.cache_dir),
            "models_dir": str(self.models_dir),
        }

    # ----- transcription -----

    def _sample_len(self, model_id: str | None, options: ASROptions) -> int | None:
        if options.max_tokens is not None:
            return int(options.max_tokens)
        return TINY_MAX_TOKENS if (model_id or self.default_model()) == TINY_MODEL_ID else None

    def _fp16(self, model: whisper.Whisper) -> bool:
        return model.device.type == "cuda"

    def _check_model(self, model: whisper.Whisper, options: ASROptions) -> None:
        if not model.is_multilingual:
            if options.language not in (None, "en"):
                raise InputError(
                    f"This is an English-only Whisper model; it cannot transcribe {options.language!r}. "
                    "Pick a multilingual model (without .en)."
                )
            if options.task == "translate":
                raise InputError("English-only Whisper models cannot translate; pick a multilingual model.")

    def transcribe_file(
        self, path: str | Path, options: ASROptions = ASROptions(), model_id: str | None = None
    ) -> Transcript:
        """Transcribe one audio file (WAV, MP3, FLAC, OGG, M4A; any rate and channel count).

        Args:
            path: the audio file.
            options: decoding options.
            model_id: Whisper model id (None = default).

        Returns:
            The transcript; ``notice`` explains an empty text (no speech).

        Raises:
            AudioError: not audio, empty, too short (< min_audio_seconds) or too long (> max_asr_seconds).
            MissingWeightsError: the model's weights are missing.
        """
        path = Path(path)
        audio, _ = load_audio(path, sr=SAMPLE_RATE, max_mb=self.settings.max_upload_mb)
        seconds = len(audio) / SAMPLE_RATE
        if seconds < self.settings.min_audio_seconds:
            raise AudioError(
                f"{path.name} is {seconds:.2f} s long; at least {self.settings.min_audio_seconds:g} s "
                "of audio is needed to transcribe."
            )
        if seconds > self.settings.max_asr_seconds:
            raise AudioError(
                f"{path.name} is {seconds / 60:.0f} min long; the limit is "
                f"{self.settings.max_asr_seconds / 60:.0f} min (max_asr_seconds). Split it first."
            )
        return self.transcribe_array(audio, options, model_id, source=path.name)

    def transcribe_array(
        self,
        audio_16k: np.ndarray,
        options: ASROptions = ASROptions(),
        model_id: str | None = None,
        source: str | None = None,
    ) -> Transcript:
        """Transcribe mono 16 kHz samples with whisper.transcribe (any length; 30 s windows).

        Silence and steady noise are caught before decoding; windows Whisper itself judges speechless
        (no-speech probability > 0.6 with average log-probability <= -1) are dropped. Either way the text is
        empty and ``notice`` says why, instead of hallucinated words.

        Args:
            audio_16k: float32 samples at 16 kHz.
            options: decoding options (one temperature, no fallback; no conditioning on previous text).
            model_id: Whisper model id (None = default).
            source: a label for messages (file name).

        Returns:
            The transcript with segments (and words when asked).

        Raises:
            AudioError: no samples. InputError: bad options. MissingWeightsError: weights missing.
        """
        import whisper

        options = check_options(options)
        audio = _as_mono(audio_16k, source)
        audio_seconds = len(audio) / SAMPLE_RATE
        model = self.load(model_id)
        self._check_model(model, options)
        start = time.perf_counter()
        reason = no_speech_reason(audio)
        if reason:
            return _empty(
                audio_seconds,
                time.perf_counter() - start,
                options.language,
                f"No speech detected in {_label(source)}: {reason}. Nothing was transcribed.",
                source,
            )
        decode = {
            "language": options.language,
            "task": options.task,
            "fp16": self._fp16(model),
            "without_timestamps": not options.segment_timestamps,
            "suppress_tokens": _suppress_tokens(model, options.segment_timestamps),
            "sample_len": self._sample_len(model_id, options),
        }
        if options.beam_size is not None and options.temperature == 0:
            decode["beam_size"] = options.beam_size
        with self.gpu_lock, oom_guard("Whisper transcription", OOM_ADVICE):
            result = whisper.transcribe(
                model,
                audio,
                verbose=None,
                temperature=options.temperature,
                condition_on_previous_text=False,
                word_timestamps=options.word_timestamps,
                no_speech_threshold=NO_SPEECH_THRESHOLD,
                logprob_threshold=LOGPROB_THRESHOLD,
                **decode,
            )
        seconds = time.perf_counter() - start
        segments = [_segment(s) for s in result["segments"] if s["text"].strip()]
        text = "".join(s.text for s in segments).strip()
        notice = None
        if not text:
            notice = (
                f"No speech detected in {_label(source)}: Whisper found no words in any 30 s window. "
                "Nothing was transcribed."
            )
        return Transcript(
            text=text,
            language=result.get("language"),
            segments=segments,
            audio_seconds=audio_seconds,
            seconds=seconds,
            rtf=seconds / audio_seconds,
            notice=notice,
            source=source,
        )

    def transcribe_batch(
        self,
        clips_16k: list[np.ndarray],
        options: ASROptions = ASROptions(),
        model_id: str | None = None,
        batch_size: int = 16,
    ) -> list[Transcript]:
        """Transcribe many clips, decoding the ones under 30 s together in batches (whisper.decode).

        For a clip under 30 s the result equals, text and language, what
        ``transcribe_array(clip, replace(options, segment_timestamps=False))`` returns: the same log-mel
        (content frames zero-padded to 30 s, exactly as whisper.transcribe slices it), language detected on
        the same first 30 s of the padded mel, the same DecodingOptions (text only, no prompt) and the
        same no-speech rule. With temperature 0 that is the same greedy/beam search, only batched.
        Clips over 30 s, and every clip when word timestamps are asked for, go through
        ``transcribe_array`` with ``options`` as given. Beam search (beam_size > 1) still shares language
        detection but decodes clip by clip: whisper's batched beam search is broken (openai/whisper#2197).

        Args:
            clips_16k: mono float32 clips at 16 kHz.
            options: decoding options; clips of unknown language are grouped by detected language.
            model_id: Whisper model id (None = default).
            batch_size: clips per decode call (lower it when the GPU runs out of memory).

        Returns:
            One transcript per clip, in input order. For batched clips ``seconds`` is the batch's time
            divided by its clip count (language detection and decoding alike), so their sum is the wall time.

        Raises:
            AudioError: a clip with no samples. InputError: bad options or batch size.
        """
        import torch
        from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim
        from whisper.decoding import DecodingOptions

        options = check_options(options)
        if batch_size < 1:
            raise InputError(f"Batch size must be at least 1, got {batch_size}.")
        clips = [_as_mono(clip, f"Clip {i}") for i, clip in enumerate(clips_16k)]
        model = self.load(model_id)
        self._check_model(model, options)
        fp16 = self._fp16(model)
        dtype = torch.float16 if fp16 else torch.float32
        results: list[Transcript | None] = [None] * len(clips)
        pending: list[_Pending] = []
        for i, audio in enumerate(clips):
            audio_seconds = len(audio) / SAMPLE_RATE
            source = f"clip {i}"
            start = time.perf_counter()
            reason = no_speech_reason(audio)
            if reason:
                results[i] = _empty(
                    audio_seconds,
                    time.perf_counter() - start,
                    options.language,
                    f"No speech detected in {source}: {reason}. Nothing was transcribed.",
                    None,
                )
                continue
            if options.word_timestamps or len(audio) > N_SAMPLES + HOP_LENGTH:
                results[i] = self.transcribe_array(audio, options, model_id)
                continue
            mel = log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)
            content_frames = mel.shape[-1] - N_FRAMES
            if content_frames > N_FRAMES:  # more than one window: whisper.transcribe would seek on
                results[i] = self.transcribe_array(audio, options, model_id)
                continue
            pending.append(
                _Pending(
                    index=i,
                    audio_seconds=audio_seconds,
                    detect_mel=pad_or_trim(mel, N_FRAMES),
                    decode_mel=pad_or_trim(mel[:, :content_frames], N_FRAMES),
                    duration=content_frames * HOP_LENGTH / SAMPLE_RATE,
                    seconds=time.perf_counter() - start,
                )
            )

        if options.language is not None or not model.is_multilingual:
            for item in pending:
                item.language = options.language or "en"
        else:
            for chunk in _chunks(pending, batch_size):
                start = time.perf_counter()
                with self.gpu_lock, oom_guard("Whisper language detection", OOM_ADVICE), torch.no_grad():
                    mel = torch.stack([p.detect_mel for p in chunk]).to(model.device).to(dtype)
                    _, probs = model.detect_language(mel)
                share = (time.perf_counter() - start) / len(chunk)
                for item, p in zip(chunk, probs):
                    item.language = max(p, key=p.get)
                    item.seconds += share

        by_language: dict[str, list[_Pending]] = {}
        for item in pending:
            by_language.setdefault(item.language, []).append(item)
        beam = options.beam_size if options.temperature == 0 else None
        # whisper's decode() breaks on beam search over a batch (cross-attention cache not repeated per beam,
        # openai/whisper#2197), so beams > 1 decode one clip per call.
        decode_size = 1 if beam is not None and beam > 1 else batch_size
        for language, items in by_language.items():
            decoding = DecodingOptions(
                language=language,
                task=options.task,
                beam_size=beam,
                temperature=options.temperature,
                fp16=fp16,
                without_timestamps=True,
                suppress_tokens=_suppress_tokens(model, False),
                sample_len=self._sample_len(model_id, options),
            )
            for chunk in _chunks(items, decode_size):
                start = time.perf_counter()
                with self.gpu_lock, oom_guard(f"batched Whisper decoding ({len(chunk)} clips)", OOM_ADVICE):
                    mel = torch.stack([p.decode_mel for p in chunk]).to(model.device).to(dtype)
                    decoded = model.decode(mel, decoding)
                share = (time.perf_counter() - start) / len(chunk)
                for item, res in zip(chunk, decoded):
                    item.seconds += share
                    results[item.index] = _batch_transcript(item, res, tokenizer_for(model, language, options.task))
        return [r for r in results if r is not None]


def tokenizer_for(model: whisper.Whisper, language: str | None, task: str) -> Any:
    """Whisper's tokenizer for this model, language and task (cached by whisper)."""
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language, task=task)


def _suppress_tokens(model: whisper.Whisper, timestamps: bool) -> list[int]:
    """Whisper's default suppression ("-1"), plus <|notimestamps|> when decoding text only.

    In text-only mode <|notimestamps|> is part of the prompt, never a word; whisper's ApplyTimestampRules
    bans it as an output in timestamp mode, and nothing does in text-only mode, so a weak or random model
    can fill the window with it (empty text). Both transcription paths use this same list.
    """
    if timestamps:
        return [-1]
    return [-1, tokenizer_for(model, None, "transcribe").no_timestamps]


def _batch_transcript(item: _Pending, res: Any, tokenizer: Any) -> Transcript:
    """A decode result as a Transcript, built the way whisper.transcribe builds its text-only segment."""
    source = f"clip {item.index}"
    if window_is_silent(res.no_speech_prob, res.avg_logprob):
        return _empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech detected in {source}: Whisper judged it to hold no speech. Nothing was transcribed.",
            None,
        )
    text = tokenizer.decode([t for t in res.tokens if t < tokenizer.eot])  # as whisper.transcribe's new_segment
    if not text.strip():
        return _empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech detected in {source}: Whisper decoded no words. Nothing was transcribed.",
            None,
        )
    segment = Segment(
        0.0, item.duration, text, avg_logprob=float(res.avg_logprob), no_speech_prob=float(res.no_speech_prob)
    )
    return Transcript(
        text=text.strip(),
        language=item.language,
        segments=[segment],
        audio_seconds=item.audio_seconds,
        seconds=item.seconds,
        rtf=item.seconds / item.audio_seconds,
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _segment(raw: dict[str, Any]) -> Segment:
    words = None
    if "words" in raw:
        words = [Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in raw["words"]]
    return Segment(
        float(raw["start"]),
        float(raw["end"]),
        raw["text"],
        words,
        avg_logprob=float(raw["avg_logprob"]),
        no_speech_prob=float(raw["no_speech_prob"]),
    )


# ----- writers -----


def _whisper_result(t: Transcript) -> dict[str, Any]:
    """The transcript in whisper.transcribe's result shape, for whisper.utils' writers."""
    with_words = any(s.words for s in t.segments)
    segments = []
    for i, s in enumerate(t.segments):
        seg: dict[str, Any] = {"id": i, "start": s.start, "end": s.end, "text": s.text}
        if with_words:  # the writers switch to word mode when the first segment has "words"
            seg["words"] = [dataclasses.asdict(w) for w in (s.words or [])]
        segments.append(seg)
    return {"text": t.text, "segments": segments, "language": t.language}


def _write_with(writer_cls: type, t: Transcript) -> str:
    buffer = io.StringIO()
    writer_cls(".").write_result(_whisper_result(t), file=buffer)
    return buffer.getvalue()


def to_txt(t: Transcript) -> str:
    """Plain text, one line per segment (whisper's TXT writer)."""
    from whisper.utils import WriteTXT

    return _write_with(WriteTXT, t)


def to_srt(t: Transcript) -> str:
    """SubRip subtitles: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` (whisper's SRT writer)."""
    from whisper.utils import WriteSRT

    return _write_with(WriteSRT, t)


def to_vtt(t: Transcript) -> str:
    """WebVTT subtitles: ``WEBVTT`` header, ``MM:SS.mmm`` cues (whisper's VTT writer)."""
    from whisper.utils import WriteVTT

    return _write_with(WriteVTT, t)


def _finite(value: Any) -> Any:
    """NaN/inf (whisper's "not measured") become null, so the file stays valid JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(t: Transcript) -> str:
    """Everything in the transcript (segments, words, timing, notice) as pretty JSON."""
    return json.dumps(_finite(dataclasses.asdict(t)), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def safe_stem(name: str) -> str:
    """A file-name-safe stem (letters, digits, ._-), never empty."""
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem, flags=re.UNICODE).strip("._")
    return stem[:80] or "audio"


def save_outputs(transcript: Transcript, folder: Path, stem: str) -> dict[str, Path]:
    """Write the TXT, SRT, VTT and JSON files, each atomically.

    Args:
        transcript: what to write.
        folder: target folder (the app uses workspace/outputs/asr/); created when missing.
        stem: file name without extension (made safe).

    Returns:
        {"txt": path, "srt": path, "vtt": path, "json": path}.
    """
    folder = Path(folder)
    stem = safe_stem(stem)
    writers = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}
    return {ext: write_text(folder / f"{stem}.{ext}", fn(transcript)) for ext, fn in writers.items()}


__all__ = [
    "ASREngine",
    "ASROptions",
    "Segment",
    "Transcript",
    "Word",
    "check_options",
    "no_speech_reason",
    "normalize_language",
    "save_outputs",
    "to_json",
    "to_srt",
    "to_txt",
    "to_vtt",
    "whisper_languages",
    "window_is_silent",
]
