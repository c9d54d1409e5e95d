"""Speech recognition with Whisper: one resident model, file/array/batch transcription.

``ASREngine`` runs from a script or a notebook without the UI::

    engine = ASREngine(load_settings(), threading.RLock())
    t = engine.transcribe_file("talk.m4a", ASROptions(language="en"))
    save_outputs(t, Path("out"), "talk")      # talk.txt / .srt / .vtt / .json

Before Whisper hears anything, a voice-activity detector (``engines.asr.engine.vad``) finds where speech is: audio
without speech is never decoded (Whisper hallucinates "Thank you." on silence and noise), and long
stretches without speech are skipped (``clip_timestamps``), so times stay those of the original file.
Each 30 s window is decoded with Whisper's temperature fallback, and a window whose text is still a
repetition loop afterwards is dropped with a notice.

Two backends, picked by model id: openai-whisper (sizes, ``.pt`` files; the papers' exact recipe, the default)
and faster-whisper / CTranslate2 (``"faster-whisper:<size or folder>"``, or a CTranslate2 folder:
``engines.asr.engine.backends.faster_whisper``). Both go through the same gate, rules and Transcript building here.

Why this module is long (~1,150 lines): ``ASREngine`` is the whole decode path of both backends (load,
VAD gate, clip timestamps, temperature fallback, loop guard, batched decoding that redoes failing results
one by one), and its steps share the loaded model, tokenizer and options. What stands alone lives
elsewhere: transcripts and their files (``engines.asr.engine.transcript``), the speech check before decoding
(``engines.asr.engine.vad``), loop detection (``engines.datasets.cutting``).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import logging
import os
import threading
import time
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import WHISPER_SIZES, Settings
from engines.asr.backends import faster_whisper as asr_faster
from engines.asr.checks import COMPRESSION_LIMIT, repetition_loop
from engines.asr.transcript import Segment, Transcript, Word
from engines.asr.vad import SpeechCheck, check_speech
from engines.core.audio import load_audio
from engines.core.device import oom_guard, resolve_device
from engines.core.errors import AudioError, InputError, LabError, MissingWeightsError
from engines.core.holder import ModelHolder
from engines.core.progress import ProgressFn
from engines.tiny import TinyModels

if TYPE_CHECKING:
    import torch
    import whisper

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Whisper's input rate
TINY_MODEL_ID = "tiny-random"
TASKS = ("transcribe", "translate")
MULTILINGUAL_VOCAB = 51865  # whisper's Whisper.is_multilingual: n_vocab >= this (English-only models: 51864)

# Whisper's own defaults (transcribe(no_speech_threshold=0.6, logprob_threshold=-1.0,
# compression_ratio_threshold=2.4) and the CLI's --temperature_increment_on_fallback 0.2). The sequential
# path hands them to whisper.transcribe, the batched path applies the same rules to each decode result, so
# both drop the same windows and redo the same ones.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = COMPRESSION_LIMIT  # 2.4: above it a window's text is a repetition loop
TEMPERATURE_INCREMENT = 0.2
THRESHOLDS = {  # whisper.transcribe's names; faster-whisper gets the same values
    "compression_ratio_threshold": COMPRESSION_RATIO_THRESHOLD,
    "logprob_threshold": LOGPROB_THRESHOLD,
    "no_speech_threshold": NO_SPEECH_THRESHOLD,
}

# A window whose text still repeats an n-gram this often in a row after the fallback is a loop. Higher than
# checks.repetition_loop's 3 (a dataset flag): real speech says "no, no, no", and here the window is dropped.
LOOP_REPEATS = 4

# The tiny random model never emits end-of-text, so every window would run to Whisper's 224-token limit of
# gibberish; capping it keeps tiny-mode runs (tests, UI checks, the eval loop) fast. Real models are not capped.
# Its gibberish also fails every quality rule (improbable tokens, repeated n-grams), so for it a window is
# decoded once, at the first temperature, and never dropped as a loop: tiny mode tests plumbing, not quality.
TINY_MAX_TOKENS = 32
REAL_MIN_WIDTH = 384  # text-decoder width of Whisper tiny; narrower models are random test models

OOM_ADVICE = "Pick a smaller Whisper model, a smaller beam or batch, or unload the TTS model (System panel)."


@dataclass(frozen=True)
class ASROptions:
    """How to decode (whisper.transcribe / DecodingOptions)."""

    language: str | None = None  # None = auto-detect; a Whisper code ("en"), "zh-cn", or a language name
    task: str = "transcribe"  # or "translate" (to English)
    word_timestamps: bool = False  # per-word start/end via cross-attention alignment
    beam_size: int | None = None  # None = greedy; beam search only applies at temperature 0
    temperature: float = 0.0  # the first temperature of the fallback ladder
    # Whisper's fallback: a window whose text loops (compression ratio > 2.4) or is improbable (average
    # log-probability < -1) is decoded again at temperature + increment, ... up to 1.0; None = one temperature
    temperature_increment: float | None = TEMPERATURE_INCREMENT
    seed: int = 0  # seeds the fallback's sampled reruns: the same audio always gives the same text
    segment_timestamps: bool = True  # False = text-only decoding, one segment per 30 s window
    # (what transcribe_batch does for clips under 30 s; set False to compare with it exactly)
    max_tokens: int | None = None  # cap on decoded tokens per 30 s window (benchmarks, tiny mode); None = 224
    vad: bool = True  # decode only where the voice-activity detector hears speech; False = all of it
    # (digital silence excepted; Whisper may then hallucinate words on noise)
    initial_prompt: str | None = None  # text the first window is conditioned on (names, spellings; OpenAI's prompt)


@dataclass
class _Pending:
    """A short clip on its way through the batched path."""

    index: int
    source: str  # the caller's label, or "clip <index>", for notices
    label: str | None  # the caller's label only (Transcript.source)
    audio: np.ndarray
    speech: SpeechCheck
    audio_seconds: float
    # (a torch tensor for openai-whisper, a numpy array for faster-whisper: _window makes both)
    detect_mel: Any  # first 30 s of the padded mel, as whisper.transcribe detects language on
    decode_mel: Any  # content frames zero-padded to 30 s, as whisper.transcribe decodes
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
    increment = options.temperature_increment
    if increment is not None and not 0.0 < float(increment) <= 1.0:
        raise InputError(
            f"temperature_increment must be above 0 and at most 1 (or None for no fallback), got {increment}."
        )
    if options.max_tokens is not None and not 1 <= int(options.max_tokens) <= 224:
        raise InputError(f"max_tokens must be between 1 and 224 (Whisper's window limit), got {options.max_tokens}.")
    beam = None if options.beam_size is None else int(options.beam_size)
    return dataclasses.replace(
        options,
        language=normalize_language(options.language),
        beam_size=beam,
        temperature=float(options.temperature),
        temperature_increment=None if increment is None else float(increment),
        seed=int(options.seed),
    )


def temperatures(options: ASROptions) -> tuple[float, ...]:
    """The fallback ladder: ``temperature``, then ``+ temperature_increment`` ... up to 1.0 (whisper's CLI rule)."""
    if options.temperature_increment is None:
        return (float(options.temperature),)
    ladder = np.arange(options.temperature, 1.0 + 1e-6, options.temperature_increment)
    return tuple(round(float(t), 6) for t in ladder)


def needs_fallback(compression_ratio: float, avg_logprob: float, no_speech_prob: float) -> bool:
    """Whisper's rule (transcribe.decode_with_fallback) for decoding a window again at the next temperature:
    its text loops or is improbable, unless the window is judged speechless."""
    failed = compression_ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOGPROB_THRESHOLD
    return failed and not (no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD)


def window_is_silent(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's rule for a window without speech: no-speech likely and the decoded text improbable."""
    return no_speech_prob > NO_SPEECH_THRESHOLD and not avg_logprob > LOGPROB_THRESHOLD


def loop_reason(text: str, compression_ratio: float | None = None) -> str | None:
    """Why a window's decoded text is a repetition loop (the fallback could not fix it), or None.

    Args:
        text: all the text Whisper decoded from one 30 s window.
        compression_ratio: Whisper's gzip ratio of that text, when known (else computed from ``text``).

    Returns:
        A short description ('"the next one" repeated 15 times in a row', ...) or None.
    """
    if compression_ratio is not None and compression_ratio > COMPRESSION_RATIO_THRESHOLD:
        return f"its text compresses {compression_ratio:.1f}x (over {COMPRESSION_RATIO_THRESHOLD}), a repetition loop"
    return repetition_loop(text, min_repeats=LOOP_REPEATS)


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


def alignment_heads_dump(heads: Any, n_layers: int, n_heads: int) -> bytes:
    """Alignment heads in whisper's own form (base85 of the gzipped bool mask), from any way a checkpoint stores them.

    Args:
        heads: that dump itself (bytes or str, as whisper._ALIGNMENT_HEADS and our converter store it), a bool
            mask of shape (text layers, text heads) (tensor, sparse or not, array, nested list), or integer
            [[layer, head], ...] pairs (as Hugging Face and CTranslate2 configs list them).
        n_layers, n_heads: the model's ``dims.n_text_layer`` and ``dims.n_text_head``.

    Returns:
        Bytes for ``Whisper.set_alignment_heads``.

    Raises:
        ValueError: the value fits none of these shapes.
    """
    if isinstance(heads, str):
        heads = heads.encode("ascii")
    if isinstance(heads, bytes | bytearray):
        mask = np.frombuffer(gzip.decompress(base64.b85decode(bytes(heads))), dtype=bool)
        if mask.size != n_layers * n_heads:
            raise ValueError(f"alignment_heads holds {mask.size} flags; the model has {n_layers}x{n_heads} heads")
        return bytes(heads)
    array = np.asarray(heads.detach().cpu().to_dense() if hasattr(heads, "to_dense") else heads)
    if array.dtype == bool and array.shape == (n_layers, n_heads):
        mask = array
    elif array.ndim == 2 and array.shape[1] == 2 and array.dtype.kind in "iu":
        mask = np.zeros((n_layers, n_heads), dtype=bool)
        for layer, head in array.tolist():
            if not (0 <= layer < n_layers and 0 <= head < n_heads):
                raise ValueError(f"alignment head ({layer}, {head}) is outside the model's {n_layers}x{n_heads} heads")
            mask[layer, head] = True
    else:
        raise ValueError(
            f"alignment_heads of shape {array.shape}: expected whisper's dump (bytes), a {n_layers}x{n_heads} "
            "bool mask or [[layer, head], ...] pairs"
        )
    return base64.b85encode(gzip.compress(np.ascontiguousarray(mask).tobytes()))


def _load_checkpoint(path: str, device: str) -> whisper.Whisper:
    """whisper.load_model for a local file, plus the checkpoint's ``alignment_heads`` when it has them.

    whisper.load_model applies alignment heads only for the sizes it knows; for a file it leaves its fallback
    (every head of the upper half of the decoder) instead of the heads chosen for the model.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = torch.load(path, map_location=device, weights_only=True)
    dims = ModelDimensions(**checkpoint["dims"])
    model = Whisper(dims)
    model.load_state_dict(checkpoint["model_state_dict"])
    heads = checkpoint.get("alignment_heads")
    if heads is not None:
        model.set_alignment_heads(alignment_heads_dump(heads, dims.n_text_layer, dims.n_text_head))
        log.info("Applied the alignment heads stored in %s", path)
    return model.to(device)


def _checkpoint_dims(path: str) -> dict[str, int] | None:
    """A checkpoint's ``dims`` without reading its weights (memory-mapped), or None when that is not possible."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return dict(checkpoint["dims"])
    except Exception:  # noqa: BLE001 - legacy (non-zip) files cannot be mapped; the caller loads the model instead
        return None


def _quality_rules(model: whisper.Whisper) -> bool:
    """Whether the fallback ladder and the loop guard apply: to every real Whisper, not to a random test model.

    Whisper tiny, the smallest real model, is 384 wide; the project's tiny random model (under any name or
    path) is 64 wide. CTranslate2 models are conversions of trained ones.
    """
    return asr_faster.is_model(model) or model.dims.n_text_state >= REAL_MIN_WIDTH


@contextlib.contextmanager
def _seeded(model: whisper.Whisper, seed: int) -> Iterator[None]:
    """Seed torch for the fallback's sampling without disturbing anyone else's random state."""
    import torch

    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{secs:04.1f}"


class ASREngine:
    """Whisper behind one ModelHolder: lazy load, unload on switch, every model call under the GPU lock."""

    def __init__(self, settings: Settings, gpu_lock: threading.RLock, tiny: TinyModels | None = None) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self.tiny = tiny
        # one ASR model resident across both backends: a whisper.Whisper or a faster_whisper.WhisperModel
        self.holder: ModelHolder[Any] = ModelHolder("asr")
        self.faster = asr_faster.FasterWhisperModels(settings, self.models_dir)

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
        """(label, model_id) pairs: the tiny model (tiny mode), the Whisper sizes, local .pt files, then
        faster-whisper's sizes and local CTranslate2 folders (labels name the backend)."""
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
        return models + self.faster.list_models()

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

    def _load(self, model_id: str, device: str) -> Any:
        import whisper

        if asr_faster.is_faster_id(model_id):
            return self.faster.load(model_id, device)
        target = self._checkpoint(model_id)
        try:
            if model_id in WHISPER_SIZES:  # whisper applies the size's own alignment heads
                model = whisper.load_model(target, device=device, download_root=str(self.cache_dir))
            else:
                model = _load_checkpoint(target, device)
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

    def load(self, model_id: str | None = None, progress: ProgressFn | None = None) -> Any:
        """Load (or reuse) a Whisper model; a different id unloads the previous one first (either backend).

        Args:
            model_id: a size from WHISPER_SIZES, "tiny-random" (tiny mode), a .pt path, or a faster-whisper id
                ("faster-whisper:<size>", downloaded when missing, or a CTranslate2 folder); None = default.
            progress: optional ``progress(fraction, desc=...)`` callable (gr.Progress works).

        Returns:
            The loaded model: a whisper.Whisper, or a faster_whisper.WhisperModel.

        Raises:
            MissingWeightsError: weights neither on disk nor downloadable (names the expected file).
            InputError: an id that is not a Whisper checkpoint.
        """
        model_id = model_id or self.default_model()
        device = resolve_device(self.settings.device)
        loaded = self.holder.loaded
        if progress is not None and (loaded is None or loaded.key != model_id):
            progress(0.0, desc=f"Loading Whisper {model_id}")
        with self.gpu_lock, asr_faster.ct2_guard(f"loading Whisper {model_id}", OOM_ADVICE):
            return self.holder.get(model_id, device, self._load)

    def download(self, size: str, progress: ProgressFn | None = None) -> Path:
        """Fetch a Whisper size into the cache folder without loading it (whisper's own download: checked by
        SHA-256, tqdm progress, so a ``gr.Progress(track_tqdm=True)`` shows it). A file already there is kept.

        Raises:
            InputError: not a Whisper size. MissingWeightsError: offline, refused, or a corrupt download.
        """
        import whisper

        if size not in whisper._MODELS:
            raise InputError(f"{size!r} is not a Whisper size. Sizes: {', '.join(WHISPER_SIZES)}.")
        if progress is not None:
            progress(0.0, desc=f"Downloading Whisper {size}")
        try:
            path = whisper._download(whisper._MODELS[size], str(self.cache_dir), in_memory=False)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            raise MissingWeightsError(self._missing_message(size, f"the download failed ({exc})")) from exc
        except RuntimeError as exc:  # whisper: "Model has been downloaded but the SHA256 checksum does not match"
            (self.cache_dir / os.path.basename(whisper._MODELS[size])).unlink(missing_ok=True)  # never keep it
            raise MissingWeightsError(self._missing_message(size, "the downloaded file is corrupt")) from exc
        return Path(path)

    def downloaded(self, size: str) -> bool:
        """Whether a Whisper size's checkpoint is in the cache folder."""
        import whisper

        return size in whisper._MODELS and (self.cache_dir / os.path.basename(whisper._MODELS[size])).is_file()

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
            **(self.model_info() if loaded else {}),
        }

    def model_info(self) -> dict[str, Any]:
        """The resident model's backend and compute type, for provenance ({} when none is loaded):
        ``{"backend": "faster-whisper", "compute_type": "int8", "device": "cpu"}`` or
        ``{"backend": "openai-whisper", "compute_type": "float16" | "float32", "device": ...}``."""
        model = self.holder.model
        if model is None:
            return {}
        if asr_faster.is_model(model):
            return asr_faster.info(model)
        fp16 = self._fp16(model)
        return {
            "backend": "openai-whisper",
            "compute_type": "float16" if fp16 else "float32",
            "device": str(model.device),
        }

    # ----- transcription -----

    def _sample_len(self, model_id: str | None, options: ASROptions) -> int | None:
        if options.max_tokens is not None:
            return int(options.max_tokens)
        return TINY_MAX_TOKENS if (model_id or self.default_model()) == TINY_MODEL_ID else None

    def _fp16(self, model: whisper.Whisper) -> bool:
        return model.device.type == "cuda"

    def _is_multilingual(self, model_id: str) -> bool:
        if model_id in WHISPER_SIZES:
            return not model_id.endswith(".en")
        loaded, model = self.holder.loaded, self.holder.model
        if asr_faster.is_faster_id(model_id):
            resident = model if loaded is not None and loaded.key == model_id else None
            return self.faster.is_multilingual(model_id, resident)
        if loaded is not None and model is not None and loaded.key == model_id:
            return bool(model.is_multilingual)
        dims = _checkpoint_dims(self._checkpoint(model_id))
        if dims is not None and "n_vocab" in dims:
            return int(dims["n_vocab"]) >= MULTILINGUAL_VOCAB
        return bool(self.load(model_id).is_multilingual)

    def random_weights(self, model_id: str | None) -> bool:
        """Whether a model is a random-weight test model (the tiny one, under any name or path), without
        loading it: sizes are OpenAI's trained weights; a checkpoint is judged by its width (``REAL_MIN_WIDTH``).
        """
        model_id = model_id or self.default_model()
        if model_id == TINY_MODEL_ID:
            return True
        if model_id in WHISPER_SIZES or asr_faster.is_faster_id(model_id):
            return False  # CTranslate2 models are conversions of trained ones
        try:
            dims = _checkpoint_dims(self._checkpoint(model_id))
        except LabError:
            return False  # missing: loading it will say so
        return dims is not None and int(dims.get("n_text_state", REAL_MIN_WIDTH)) < REAL_MIN_WIDTH

    def check_language(self, model_id: str | None, language: str | None, task: str = "transcribe") -> str | None:
        """Check, without decoding anything, that the model can transcribe (or translate) this language.

        English-only Whisper models (the ``*.en`` sizes, or a checkpoint without the multilingual vocabulary)
        turn any speech into English words: nonsense for another language. Sizes are judged by their name, a
        checkpoint file by its dimensions (read without loading the weights when the file allows it).

        Args:
            model_id: Whisper model id (None = default).
            language: the language asked for (None/"auto" = detect; English-only models assume English).
            task: "transcribe" or "translate".

        Returns:
            The Whisper language code (None for auto-detect).

        Raises:
            InputError: an unknown language, or an English-only model asked for another language or to
                translate (the message names the model, the language and what to pick instead).
            MissingWeightsError: a checkpoint path that does not exist.
        """
        code = normalize_language(language)
        if code in (None, "en") and task != "translate":
            return code
        model_id = model_id or self.default_model()
        if self._is_multilingual(model_id):
            return code
        name = model_id if model_id in WHISPER_SIZES or model_id == TINY_MODEL_ID else Path(model_id).name
        size = model_id.removeprefix(asr_faster.PREFIX)
        if asr_faster.is_faster_id(model_id):
            name = asr_faster.model_name(model_id)
        if model_id in WHISPER_SIZES or (size in asr_faster.sizes() and model_id.startswith(asr_faster.PREFIX)):
            same = model_id[: len(model_id) - len(size)] + size.removesuffix(".en")
            instead = f"'{same}' (the same size without '.en')"
        elif asr_faster.is_faster_id(model_id):
            instead = "a faster-whisper size without '.en', such as 'faster-whisper:small'"
        else:
            instead = "a size without '.en', such as 'small' or 'medium'"
        if task == "translate":
            raise InputError(
                f"Whisper model {name!r} is English-only and cannot translate. "
                f"Pick a multilingual Whisper model instead: {instead}."
            )
        language_name = whisper_languages().get(code or "", code or "").title()
        raise InputError(
            f"Whisper model {name!r} is English-only: it cannot transcribe {language_name} ({code}). Pick a "
            f"multilingual Whisper model instead: {instead}; or set the language to English (en) or auto."
        )

    def transcribe_file(
        self, path: str | Path, options: ASROptions = ASROptions(), model_id: str | None = None
    ) -> Transcript:
        """Transcribe one audio file (WAV, MP3, FLAC, OGG, M4A; any rate and channel count).

        Args:
            path: the audio file.
            options: decoding options.
            model_id: Whisper model id (None = default).

        Returns:
            The transcript; ``notice`` explains an empty text (no speech) or a dropped repetition loop.

        Raises:
            AudioError: not audio, empty, too short (< min_audio_seconds) or too long (> max_asr_seconds).
            InputError: bad options, or an English-only model asked for another language.
            MissingWeightsError: the model's weights are missing.
        """
        path = Path(path)
        options = check_options(options)
        self.check_language(model_id, options.language, options.task)  # before decoding a long file
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

        Only speech reaches Whisper: audio where the voice-activity detector hears none (silence, dither,
        steady noise, hum, clicks) gives empty text, and stretches without speech longer than a few seconds
        are skipped (times stay those of the original audio). Each window is decoded with Whisper's
        temperature fallback (seeded: reruns give the same text); a window that is still a repetition loop
        is dropped; windows Whisper itself judges speechless (no-speech probability > 0.6 with average
        log-probability <= -1) are dropped. ``notice`` says what was dropped and why.

        Args:
            audio_16k: float32 samples at 16 kHz.
            options: decoding options (no conditioning on previous text).
            model_id: Whisper model id (None = default).
            source: a label for messages (file name).

        Returns:
            The transcript with segments (and words when asked).

        Raises:
            AudioError: no samples. InputError: bad options, or an English-only model asked for another
            language. MissingWeightsError: weights missing.
        """
        options = check_options(options)
        audio = _as_mono(audio_16k, source)
        self.check_language(model_id, options.language, options.task)
        model = self.load(model_id)
        start = time.perf_counter()
        speech = check_speech(audio, vad=options.vad)
        return self._transcribe(model, model_id, audio, options, speech, source, start)

    def _transcribe(
        self,
        model: Any,
        model_id: str | None,
        audio: np.ndarray,
        options: ASROptions,
        speech: SpeechCheck,
        source: str | None,
        start: float,
    ) -> Transcript:
        audio_seconds = len(audio) / SAMPLE_RATE
        if speech.reason:
            return _empty(
                audio_seconds,
                time.perf_counter() - start,
                options.language,
                f"No speech detected in {_label(source)}: {speech.reason}. Nothing was transcribed.",
                source,
            )
        rules = _quality_rules(model)
        if asr_faster.is_model(model):  # detects the language from the first clip timestamp itself
            with self.gpu_lock, asr_faster.ct2_guard("faster-whisper transcription", OOM_ADVICE):
                result = asr_faster.transcribe(
                    model,
                    audio,
                    options,
                    speech.clip_timestamps,
                    temperatures(options),
                    self._sample_len(model_id, options),
                    THRESHOLDS,
                )
        else:
            result = self._whisper_transcribe(model, model_id, audio, options, speech, rules)
        seconds = time.perf_counter() - start
        if rules:
            segments, loops = _drop_loops(result["segments"])
        else:
            segments, loops = [_segment(r) for r in result["segments"] if r["text"].strip()], ""
        text = "".join(s.text for s in segments).strip()
        notice = None
        if loops and not text:
            notice = (
                f"No speech transcribed in {_label(source)}: what Whisper decoded was a repetition loop "
                f"({loops}) and was dropped."
            )
        elif loops:
            notice = f"Dropped a repetition loop Whisper decoded in {_label(source)} ({loops})."
        elif not text:
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

    def _whisper_transcribe(
        self,
        model: whisper.Whisper,
        model_id: str | None,
        audio: np.ndarray,
        options: ASROptions,
        speech: SpeechCheck,
        rules: bool,
    ) -> dict[str, Any]:
        """whisper.transcribe over the spans to decode, with the ladder and thresholds (openai-whisper)."""
        import whisper

        language = options.language
        if language is None and model.is_multilingual and not speech.whole:
            # whisper.transcribe detects on the first 30 s of the file, which may hold no speech at all
            language = self._detect_language(model, audio, speech.spans[0][0])
        decode = {
            "language": language,
            "task": options.task,
            "fp16": self._fp16(model),
            "without_timestamps": not options.segment_timestamps,
            "suppress_tokens": _suppress_tokens(model, options.segment_timestamps),
            "sample_len": self._sample_len(model_id, options),
        }
        if options.beam_size is not None:  # whisper.transcribe drops it for temperatures above 0
            decode["beam_size"] = options.beam_size
        with self.gpu_lock, oom_guard("Whisper transcription", OOM_ADVICE), _seeded(model, options.seed):
            result = whisper.transcribe(
                model,
                audio,
                verbose=None,
                temperature=temperatures(options) if rules else options.temperature,
                condition_on_previous_text=False,
                word_timestamps=options.word_timestamps,
                clip_timestamps=speech.clip_timestamps or "0",
                initial_prompt=options.initial_prompt,
                **THRESHOLDS,
                **decode,
            )
        return result

    def _detect_language(self, model: whisper.Whisper, audio: np.ndarray, start_seconds: float) -> str:
        """Whisper's language detection on the 30 s from where speech starts."""
        import torch
        from whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

        first = int(start_seconds * SAMPLE_RATE)
        mel = log_mel_spectrogram(audio[first : first + N_SAMPLES], model.dims.n_mels, padding=N_SAMPLES)
        dtype = torch.float16 if self._fp16(model) else torch.float32
        with self.gpu_lock, oom_guard("Whisper language detection", OOM_ADVICE), torch.no_grad():
            _, probs = model.detect_language(pad_or_trim(mel, N_FRAMES).to(model.device).to(dtype))
        return max(probs, key=probs.get)

    def transcribe_batch(
        self,
        clips_16k: list[np.ndarray],
        options: ASROptions = ASROptions(),
        model_id: str | None = None,
        batch_size: int = 16,
        sources: Sequence[str] | None = None,
    ) -> list[Transcript]:
        """Transcribe many clips, decoding the ones under 30 s together in batches (whisper.decode).

        For a clip under 30 s the result equals, text and language, what
        ``transcribe_array(clip, replace(options, segment_timestamps=False))`` returns: the same voice-activity
        check, the same log-mel (content frames zero-padded to 30 s, exactly as whisper.transcribe slices it),
        language detected on the same first 30 s of the padded mel, the same DecodingOptions (text only, no
        prompt), the same no-speech and loop rules. The batch is decoded at temperature 0; a clip whose result
        fails Whisper's fallback thresholds (compression ratio > 2.4, average log-probability < -1) is redone
        through ``transcribe_array``'s path, which climbs the same seeded ladder. Short clips with stretches
        without speech to skip (and all of them when the first temperature is above 0) are decoded alone,
        text-only. Clips over 30 s, and every clip when word timestamps are asked for, go through
        ``transcribe_array`` with ``options`` as given. Beam search (beam_size > 1) still shares language
        detection but decodes clip by clip: whisper's batched beam search is broken (openai/whisper#2197).

        Args:
            clips_16k: mono float32 clips at 16 kHz.
            options: decoding options; clips of unknown language are grouped by detected language.
            model_id: Whisper model id (None = default).
            batch_size: clips per decode call (lower it when the GPU runs out of memory).
            sources: a label per clip (file name, sentence id) for notices and ``Transcript.source``;
                None = "clip <index>".

        Returns:
            One transcript per clip, in input order. For batched clips ``seconds`` is the batch's time
            divided by its clip count (language detection and decoding alike), plus any redo of its own.

        Raises:
            AudioError: a clip with no samples. InputError: bad options or batch size, or an English-only
            model asked for another language.
        """
        from whisper.audio import HOP_LENGTH, N_SAMPLES

        options = check_options(options)
        if batch_size < 1:
            raise InputError(f"Batch size must be at least 1, got {batch_size}.")
        if sources is not None and len(sources) != len(clips_16k):
            raise InputError(f"{len(sources)} labels for {len(clips_16k)} clips.")
        labels = [str(s) for s in sources] if sources is not None else [f"clip {i}" for i in range(len(clips_16k))]
        clips = [_as_mono(clip, labels[i] if sources is not None else f"Clip {i}") for i, clip in enumerate(clips_16k)]
        self.check_language(model_id, options.language, options.task)
        model = self.load(model_id)
        text_only = dataclasses.replace(options, segment_timestamps=False)
        rules = _quality_rules(model)
        fallback = rules and len(temperatures(options)) > 1
        results: list[Transcript | None] = [None] * len(clips)
        pending: list[_Pending] = []
        for i, audio in enumerate(clips):
            audio_seconds = len(audio) / SAMPLE_RATE
            start = time.perf_counter()
            speech = check_speech(audio, vad=options.vad)
            if speech.reason:
                results[i] = _empty(
                    audio_seconds,
                    time.perf_counter() - start,
                    options.language,
                    f"No speech detected in {labels[i]}: {speech.reason}. Nothing was transcribed.",
                    sources and labels[i],
                )
                continue
            if options.word_timestamps or len(audio) > N_SAMPLES + HOP_LENGTH:
                results[i] = self._transcribe(model, model_id, audio, options, speech, sources and labels[i], start)
                continue
            if options.temperature > 0 or not speech.whole:  # short, but not one greedy window: text-only, alone
                results[i] = self._transcribe(model, model_id, audio, text_only, speech, sources and labels[i], start)
                continue
            window = _window(model, audio)
            if window is None:  # more than one window: whisper.transcribe would seek on
                results[i] = self._transcribe(model, model_id, audio, options, speech, sources and labels[i], start)
                continue
            pending.append(
                _Pending(
                    index=i,
                    source=labels[i],
                    label=sources and labels[i],
                    audio=audio,
                    speech=speech,
                    audio_seconds=audio_seconds,
                    detect_mel=window[0],
                    decode_mel=window[1],
                    duration=window[2],
                    seconds=time.perf_counter() - start,
                )
            )

        multilingual = model.model.is_multilingual if asr_faster.is_model(model) else model.is_multilingual
        if options.language is not None or not multilingual:
            for item in pending:
                item.language = options.language or "en"
        else:
            for chunk in _chunks(pending, batch_size):
                start = time.perf_counter()
                with self.gpu_lock, asr_faster.ct2_guard("Whisper language detection", OOM_ADVICE):
                    languages = _detect_languages(model, [p.detect_mel for p in chunk])
                share = (time.perf_counter() - start) / len(chunk)
                for item, language in zip(chunk, languages):
                    item.language = language
                    item.seconds += share

        by_language: dict[str, list[_Pending]] = {}
        for item in pending:
            by_language.setdefault(item.language, []).append(item)
        beam = options.beam_size
        # whisper's decode() breaks on beam search over a batch (cross-attention cache not repeated per beam,
        # openai/whisper#2197), so beams > 1 decode one clip per call; CTranslate2 batches beams correctly.
        faster = asr_faster.is_model(model)
        decode_size = 1 if beam is not None and beam > 1 and not faster else batch_size
        sample_len = self._sample_len(model_id, options)
        redo: list[_Pending] = []
        for language, items in by_language.items():
            if faster:
                tokenizer = asr_faster.tokenizer(model, language, options.task)
            else:
                tokenizer = tokenizer_for(model, language, options.task)
            for chunk in _chunks(items, decode_size):
                start = time.perf_counter()
                with self.gpu_lock, asr_faster.ct2_guard(f"batched Whisper decoding ({len(chunk)} clips)", OOM_ADVICE):
                    features = [p.decode_mel for p in chunk]
                    if faster:
                        decoded = asr_faster.decode_batch(model, features, language, options, sample_len)
                    else:
                        decoded = self._decode_batch(model, features, language, options, sample_len)
                share = (time.perf_counter() - start) / len(chunk)
                for item, res in zip(chunk, decoded):
                    item.seconds += share
                    if fallback and needs_fallback(res.compression_ratio, res.avg_logprob, res.no_speech_prob):
                        redo.append(item)  # whisper.transcribe would climb the temperature ladder here
                    else:
                        results[item.index] = _batch_transcript(item, res, tokenizer, rules)
        for item in redo:
            start = time.perf_counter()
            again = dataclasses.replace(text_only, language=item.language)
            t = self._transcribe(model, model_id, item.audio, again, item.speech, None, start)
            t.seconds += item.seconds
            t.rtf = t.seconds / t.audio_seconds
            results[item.index] = t
        return [r for r in results if r is not None]

    def _decode_batch(
        self,
        model: whisper.Whisper,
        mels: list[torch.Tensor],
        language: str,
        options: ASROptions,
        sample_len: int | None,
    ) -> list[Any]:
        """whisper.decode over 30 s windows at temperature 0, text only, as whisper.transcribe's first try."""
        import torch
        from whisper.decoding import DecodingOptions

        fp16 = self._fp16(model)
        decoding = DecodingOptions(
            language=language,
            task=options.task,
            beam_size=options.beam_size,
            temperature=0.0,
            fp16=fp16,
            without_timestamps=True,
            suppress_tokens=_suppress_tokens(model, False),
            sample_len=sample_len,
        )
        mel = torch.stack(mels).to(model.device).to(torch.float16 if fp16 else torch.float32)
        return model.decode(mel, decoding)


def _window(model: Any, audio: np.ndarray) -> tuple[Any, Any, float] | None:
    """A clip under 30 s as (detection input, decode input, content seconds), sliced the way the backend's
    sequential transcribe slices it; None when it spans more than one window."""
    if asr_faster.is_model(model):
        return asr_faster.window(model, audio)
    from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

    mel = log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)
    content_frames = mel.shape[-1] - N_FRAMES
    if content_frames > N_FRAMES:
        return None
    # detection on the first 30 s of the padded mel, decoding on the content frames zero-padded to 30 s
    return (
        pad_or_trim(mel, N_FRAMES),
        pad_or_trim(mel[:, :content_frames], N_FRAMES),
        content_frames * HOP_LENGTH / SAMPLE_RATE,
    )


def _detect_languages(model: Any, windows: list[Any]) -> list[str]:
    """The most likely language of each 30 s window, batched (the caller holds the GPU lock)."""
    if asr_faster.is_model(model):
        return asr_faster.detect_languages(model, windows)
    import torch

    dtype = torch.float16 if model.device.type == "cuda" else torch.float32
    with torch.no_grad():
        _, probs = model.detect_language(torch.stack(windows).to(model.device).to(dtype))
    return [max(p, key=p.get) for p in probs]


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


def _batch_transcript(item: _Pending, res: Any, tokenizer: Any, loop_guard: bool = True) -> Transcript:
    """A decode result as a Transcript, built the way whisper.transcribe builds its text-only segment."""
    source = item.source
    if window_is_silent(res.no_speech_prob, res.avg_logprob):
        return _empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech detected in {source}: Whisper judged it to hold no speech. Nothing was transcribed.",
            item.label,
        )
    text = tokenizer.decode([t for t in res.tokens if t < tokenizer.eot])  # as whisper.transcribe's new_segment
    loop = loop_reason(text, res.compression_ratio) if loop_guard else None
    if loop:
        return _empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech transcribed in {source}: what Whisper decoded was a repetition loop "
            f"(0:00.0-{_clock(item.duration)}: {loop}) and was dropped.",
            item.label,
        )
    if not text.strip():
        return _empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech detected in {source}: Whisper decoded no words. Nothing was transcribed.",
            item.label,
        )
    segment = Segment(
        0.0,
        item.duration,
        text,
        avg_logprob=float(res.avg_logprob),
        no_speech_prob=float(res.no_speech_prob),
        temperature=float(res.temperature),
        compression_ratio=float(res.compression_ratio),
    )
    return Transcript(
        text=text.strip(),
        language=item.language,
        segments=[segment],
        audio_seconds=item.audio_seconds,
        seconds=item.seconds,
        source=item.label,
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
        temperature=float(raw["temperature"]),
        compression_ratio=float(raw["compression_ratio"]),
        seek=int(raw["seek"]) if "seek" in raw else None,
        tokens=[int(t) for t in raw["tokens"]] if "tokens" in raw else None,
    )


def _drop_loops(raw_segments: list[dict[str, Any]]) -> tuple[list[Segment], str]:
    """whisper.transcribe's segments without the windows whose text is still a repetition loop.

    Returns:
        The kept (non-empty) segments, and a description of each dropped window ("" when none was).
    """
    windows: dict[int, list[dict[str, Any]]] = {}
    for raw in raw_segments:  # segments of one 30 s window share its seek (and its compression ratio)
        windows.setdefault(int(raw["seek"]), []).append(raw)
    kept: list[Segment] = []
    dropped: list[str] = []
    for raws in windows.values():
        reason = loop_reason("".join(r["text"] for r in raws), max(float(r["compression_ratio"]) for r in raws))
        if reason:
            dropped.append(f"{_clock(raws[0]['start'])}-{_clock(raws[-1]['end'])}: {reason}")
            log.info("Dropped a repetition loop: %s", dropped[-1])
            continue
        kept.extend(_segment(r) for r in raws if r["text"].strip())
    return kept, "; ".join(dropped)


__all__ = [
    "ASREngine",
    "ASROptions",
    "alignment_heads_dump",
    "check_options",
    "loop_reason",
    "needs_fallback",
    "normalize_language",
    "temperatures",
    "whisper_languages",
    "window_is_silent",
]
