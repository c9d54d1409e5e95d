"""The openai-whisper backend: Whisper sizes and ``.pt`` checkpoints, the papers' exact recipe (the default).

Every model id the faster-whisper backend does not claim is this backend's: a size from ``WHISPER_SIZES``
(downloaded into the cache folder, checked by SHA-256), ``"tiny-random"`` (tiny mode), or a checkpoint file
(absolute, under ``workspace/models/whisper``, or relative to the working directory). Transcription is
``whisper.transcribe``; the batched path calls ``model.detect_language`` and ``model.decode`` on 30 s mels.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import logging
import os
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from config import WHISPER_SIZES, Settings
from engines.asr.backends.base import (
    APPEND_PUNCTUATION,
    OOM_ADVICE,
    PREPEND_PUNCTUATION,
    DecodeRequest,
    DecodeResult,
    RawTranscription,
    RawWord,
    TextTokenizer,
    Window,
)
from engines.asr.options import ASROptions
from engines.core.device import oom_guard
from engines.core.errors import InputError, LabError, MissingWeightsError
from engines.core.progress import ProgressFn
from engines.tiny import TinyModels

if TYPE_CHECKING:
    import torch
    import whisper

log = logging.getLogger(__name__)

BACKEND = "openai-whisper"
SAMPLE_RATE = 16000  # Whisper's input rate
TINY_MODEL_ID = "tiny-random"
MULTILINGUAL_VOCAB = 51865  # whisper's Whisper.is_multilingual: n_vocab >= this (English-only models: 51864)
REAL_MIN_WIDTH = 384  # text-decoder width of Whisper tiny; narrower models are random test models


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


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """The fallback's sampling draws from this thread's own generators, seeded with ``seed`` (the same numbers as
    ``torch.manual_seed(seed)`` would give): a synthesis sampling in another thread keeps its stream."""
    from engines.core.rng import private_rng

    with private_rng(seed):
        yield


def _fp16(model: whisper.Whisper) -> bool:
    return bool(model.device.type == "cuda")


def tokenizer_for(model: whisper.Whisper, language: str | None, task: str) -> Any:
    """Whisper's tokenizer for this model, language and task (cached by whisper)."""
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language, task=task)


def suppress_tokens(model: whisper.Whisper, timestamps: bool) -> list[int]:
    """Whisper's default suppression ("-1"), plus <|notimestamps|> when decoding text only.

    In text-only mode <|notimestamps|> is part of the prompt, never a word; whisper's ApplyTimestampRules
    bans it as an output in timestamp mode, and nothing does in text-only mode, so a weak or random model
    can fill the window with it (empty text). Both transcription paths (and faster-whisper's) use this list.
    """
    if timestamps:
        return [-1]
    return [-1, tokenizer_for(model, None, "transcribe").no_timestamps]


class OpenAIWhisperBackend:
    """openai-whisper: where its models come from, how they load, and its decoding calls."""

    name = BACKEND
    # whisper's decode() breaks on beam search over a batch (cross-attention cache not repeated per beam,
    # openai/whisper#2197), so beams > 1 decode one clip per call
    batches_beam_search = False

    def __init__(self, settings: Settings, models_dir: Path, tiny: TinyModels | None = None) -> None:
        self.settings = settings
        self.models_dir = models_dir  # local checkpoints (*.pt) the model picker lists
        self.tiny = tiny

    # ----- models -----

    @property
    def cache_dir(self) -> Path:
        """Where Whisper sizes are downloaded to / looked up in."""
        folder = self.settings.path("whisper_cache_dir")
        if folder is not None:
            return folder
        return Path(os.getenv("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "whisper"

    def claims(self, model_id: str) -> bool:
        return True  # the default backend: the registry asks it last

    def owns(self, model: object) -> bool:
        return type(model).__module__.startswith("whisper")

    def list_models(self) -> list[tuple[str, str]]:
        """The tiny model (tiny mode), the Whisper sizes (``(downloaded)`` when cached), then local .pt files."""
        models: list[tuple[str, str]] = []
        if self.settings.tiny_models and self.tiny is not None:
            models.append(("tiny-random (random weights: gibberish)", TINY_MODEL_ID))
        for size in WHISPER_SIZES:
            models.append((f"{size} (downloaded)" if self.downloaded(size) else size, size))
        if self.models_dir.is_dir():
            for path in sorted(self.models_dir.glob("*.pt")):
                models.append((f"{path.name} (local)", str(path)))
        return models

    def checkpoint(self, model_id: str) -> str:
        """What to hand whisper.load_model: a size name or an existing .pt path.

        Raises:
            InputError: "tiny-random" outside tiny mode. MissingWeightsError: no such file (names where it looked).
        """
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

    def load(self, model_id: str, device: str) -> whisper.Whisper:
        """A size (whisper.load_model, with its own alignment heads) or a checkpoint file, in eval mode.

        Raises:
            MissingWeightsError: a size neither cached nor downloadable, or a missing file.
            InputError: a file that is not a Whisper checkpoint.
        """
        import whisper

        from engines.core.rng import private_rng

        target = self.checkpoint(model_id)
        # building the network initialises it at random before the weights load: not from the shared generator,
        # which a synthesis in another thread may be sampling from
        try:
            with private_rng(0):
                if model_id in WHISPER_SIZES:  # whisper applies the size's own alignment heads
                    model = whisper.load_model(target, device=device, download_root=str(self.cache_dir))
                else:
                    model = _load_checkpoint(target, device)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise MissingWeightsError(self.missing_message(model_id, f"the download failed ({exc})")) from exc
        except RuntimeError as exc:
            if "SHA256" in str(exc):
                raise MissingWeightsError(self.missing_message(model_id, "the downloaded file is corrupt")) from exc
            if "out of memory" in str(exc).lower():
                raise
            raise self._not_a_checkpoint(model_id, target, exc) from exc
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types (UnpicklingError, KeyError, EOFError)
            raise self._not_a_checkpoint(model_id, target, exc) from exc
        model.eval()
        return model

    def _not_a_checkpoint(self, model_id: str, target: str, exc: BaseException) -> LabError:
        if model_id in WHISPER_SIZES:
            return MissingWeightsError(self.missing_message(model_id, f"the cached file is unreadable ({exc})"))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return InputError(
            f"{target} is not a Whisper checkpoint this version can load "
            f"(expects {{'dims', 'model_state_dict'}}): {type(exc).__name__}: {first}"
        )

    def _size_file(self, size: str) -> Path:
        """Where whisper keeps a size's checkpoint in the cache folder (its URL's file name)."""
        import whisper

        return self.cache_dir / os.path.basename(whisper._MODELS[size])

    def missing_message(self, size: str, why: str) -> str:
        """What to do when a size is not on disk: the expected file and the command that fetches it."""
        expected = self._size_file(size)
        return (
            f"Whisper model '{size}' is not on disk and {why}. Expected file: {expected}. "
            f"On a machine with internet run: python -c \"import whisper; whisper.load_model('{size}')\" "
            f"and copy ~/.cache/whisper/{expected.name} to {self.cache_dir} (or set whisper_cache_dir)."
        )

    def download(self, size: str, progress: ProgressFn | None = None) -> Path:
        """Fetch a size into the cache folder without loading it (see ``ASREngine.download``)."""
        import whisper

        if size not in whisper._MODELS:
            raise InputError(f"{size!r} is not a Whisper size. Sizes: {', '.join(WHISPER_SIZES)}.")
        if progress is not None:
            progress(0.0, desc=f"Downloading Whisper {size}")
        try:
            path = whisper._download(whisper._MODELS[size], str(self.cache_dir), in_memory=False)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            raise MissingWeightsError(self.missing_message(size, f"the download failed ({exc})")) from exc
        except RuntimeError as exc:  # whisper: "Model has been downloaded but the SHA256 checksum does not match"
            self._size_file(size).unlink(missing_ok=True)  # never keep it
            raise MissingWeightsError(self.missing_message(size, "the downloaded file is corrupt")) from exc
        return Path(path)

    def downloaded(self, size: str) -> bool:
        """Whether a size's checkpoint is in the cache folder."""
        import whisper

        return size in whisper._MODELS and self._size_file(size).is_file()

    def display_name(self, model_id: str) -> str:
        return model_id if model_id in WHISPER_SIZES or model_id == TINY_MODEL_ID else Path(model_id).name

    def multilingual_alternative(self, model_id: str) -> str:
        if model_id in WHISPER_SIZES:
            return f"'{model_id.removesuffix('.en')}' (the same size without '.en')"
        return "a size without '.en', such as 'small' or 'medium'"

    def is_multilingual(self, model_id: str, resident: whisper.Whisper | None) -> bool | None:
        """A size by its name, the resident model by its vocabulary, a file by its dims (read without the weights
        when the file allows it); None for a legacy file only loading can tell."""
        if model_id in WHISPER_SIZES:
            return not model_id.endswith(".en")
        if resident is not None:
            return bool(resident.is_multilingual)
        dims = _checkpoint_dims(self.checkpoint(model_id))
        if dims is not None and "n_vocab" in dims:
            return int(dims["n_vocab"]) >= MULTILINGUAL_VOCAB
        return None

    def random_weights(self, model_id: str) -> bool:
        """Sizes are OpenAI's trained weights; a checkpoint is judged by its width (``REAL_MIN_WIDTH``)."""
        if model_id == TINY_MODEL_ID:
            return True
        if model_id in WHISPER_SIZES:
            return False
        try:
            dims = _checkpoint_dims(self.checkpoint(model_id))
        except LabError:
            return False  # missing: loading it will say so
        return dims is not None and int(dims.get("n_text_state", REAL_MIN_WIDTH)) < REAL_MIN_WIDTH

    def quality_rules(self, model: whisper.Whisper) -> bool:
        """Whisper tiny, the smallest real model, is 384 wide; the project's tiny random model (under any name
        or path) is 64 wide."""
        return bool(model.dims.n_text_state >= REAL_MIN_WIDTH)

    def info(self, model: whisper.Whisper) -> dict[str, str]:
        return {
            "backend": BACKEND,
            "compute_type": "float16" if _fp16(model) else "float32",
            "device": str(model.device),
        }

    def provenance(self, model_id: str) -> dict[str, Any]:
        """Backend, openai-whisper's version, and the checkpoint file with its SHA-256 when it is on disk."""
        from engines.core.provenance import installed_version, weights_sha256

        record: dict[str, Any] = {
            "backend": BACKEND,
            "versions": {"openai-whisper": installed_version("openai-whisper")},
        }
        try:
            target = self.checkpoint(model_id)
        except LabError:
            return record
        path = self._size_file(target) if target in WHISPER_SIZES else Path(target)
        if path.is_file():
            record.update({"file": str(path), "sha256": weights_sha256(path)})
        return record

    # ----- decoding -----

    def transcribe(self, model: whisper.Whisper, audio: np.ndarray, request: DecodeRequest) -> RawTranscription:
        """whisper.transcribe over the spans to decode, with the ladder and thresholds."""
        import whisper

        options, speech = request.options, request.speech
        language = options.language
        if language is None and model.is_multilingual and not speech.whole:
            # whisper.transcribe detects on the first 30 s of the file, which may hold no speech at all
            language = self._detect_language(model, audio, speech.spans[0][0])
        decode: dict[str, Any] = {
            "language": language,
            "task": options.task,
            "fp16": _fp16(model),
            "without_timestamps": not options.segment_timestamps,
            "suppress_tokens": suppress_tokens(model, options.segment_timestamps),
            "sample_len": request.sample_len,
        }
        if options.beam_size is not None:  # whisper.transcribe drops it for temperatures above 0
            decode["beam_size"] = options.beam_size
        with oom_guard("Whisper transcription", OOM_ADVICE), _seeded(options.seed):
            result = whisper.transcribe(
                model,
                audio,
                verbose=None,
                temperature=request.temperatures,
                condition_on_previous_text=False,
                word_timestamps=options.word_timestamps,
                clip_timestamps=speech.clip_timestamps or "0",
                initial_prompt=options.initial_prompt,
                **request.thresholds,
                **decode,
            )
        return cast(RawTranscription, result)

    def _detect_language(self, model: whisper.Whisper, audio: np.ndarray, start_seconds: float) -> str:
        """Whisper's language detection on the 30 s from where speech starts."""
        import torch
        from whisper.audio import N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

        first = int(start_seconds * SAMPLE_RATE)
        mel = log_mel_spectrogram(audio[first : first + N_SAMPLES], model.dims.n_mels, padding=N_SAMPLES)
        dtype = torch.float16 if _fp16(model) else torch.float32
        with oom_guard("Whisper language detection", OOM_ADVICE), torch.no_grad():
            _, probs = model.detect_language(pad_or_trim(mel, N_FRAMES).to(model.device).to(dtype))
        return str(max(probs, key=probs.get))

    def window(self, model: whisper.Whisper, audio: np.ndarray) -> Window | None:
        """The log-mel as whisper.transcribe slices it: detection on the first 30 s of the padded mel, decoding
        on the content frames zero-padded to 30 s."""
        from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim

        mel = log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)
        content_frames = mel.shape[-1] - N_FRAMES
        if content_frames > N_FRAMES:
            return None
        return Window(
            pad_or_trim(mel, N_FRAMES),
            pad_or_trim(mel[:, :content_frames], N_FRAMES),
            content_frames * HOP_LENGTH / SAMPLE_RATE,
        )

    def detect_languages(self, model: whisper.Whisper, features: Sequence[torch.Tensor]) -> list[str]:
        import torch

        dtype = torch.float16 if model.device.type == "cuda" else torch.float32
        with torch.no_grad():
            _, probs = model.detect_language(torch.stack(list(features)).to(model.device).to(dtype))
        return [max(p, key=p.get) for p in probs]

    def tokenizer(self, model: whisper.Whisper, language: str | None, task: str) -> TextTokenizer:
        return cast(TextTokenizer, tokenizer_for(model, language, task))

    def decode_batch(
        self,
        model: whisper.Whisper,
        features: Sequence[torch.Tensor],
        language: str,
        options: ASROptions,
        sample_len: int | None,
    ) -> Sequence[DecodeResult]:
        """whisper.decode over 30 s windows at temperature 0, text only, as whisper.transcribe's first try."""
        import torch
        from whisper.decoding import DecodingOptions

        fp16 = _fp16(model)
        decoding = DecodingOptions(
            language=language,
            task=options.task,
            beam_size=options.beam_size,
            temperature=0.0,
            fp16=fp16,
            without_timestamps=True,
            suppress_tokens=suppress_tokens(model, False),
            sample_len=sample_len,
        )
        mel = torch.stack(list(features)).to(model.device).to(torch.float16 if fp16 else torch.float32)
        return cast(Sequence[DecodeResult], model.decode(mel, decoding))

    def decode_packed(
        self,
        model: whisper.Whisper,
        features: Sequence[torch.Tensor],
        frames: Sequence[int],
        language: str,
        options: ASROptions,
        sample_len: int | None,
    ) -> list[tuple[DecodeResult, list[RawWord]]]:
        """``decode_batch`` and whisper's word alignment (``whisper.timing.find_alignment``, punctuation merged as
        its word timestamps merge it), both on one encoder pass: whisper.decode takes encoded windows as they are,
        and the alignment is given a model whose forward pass only runs the decoder."""
        import torch
        from whisper.audio import N_FRAMES
        from whisper.timing import find_alignment, merge_punctuations

        fp16 = _fp16(model)
        mel = torch.stack(list(features)).to(model.device).to(torch.float16 if fp16 else torch.float32)
        with torch.no_grad():
            encoded = model.embed_audio(mel)
        decoded = self.decode_batch(model, list(encoded), language, options, sample_len)
        tokenizer = tokenizer_for(model, language, options.task)
        out: list[tuple[DecodeResult, list[RawWord]]] = []
        for i, result in enumerate(decoded):
            text = [t for t in result.tokens if t < tokenizer.eot]
            # whisper.timing.find_alignment calls model(mel, tokens): given the encoded window, only the decoder runs
            alignment = find_alignment(
                cast(Any, _DecoderOnly(model, encoded[i : i + 1])),
                tokenizer,
                text,
                mel[i],
                min(int(frames[i]), N_FRAMES),
            )
            merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
            words: list[RawWord] = [
                {"word": w.word, "start": float(w.start), "end": float(w.end), "probability": float(w.probability)}
                for w in alignment
                if w.word
            ]
            out.append((result, words))
        return out


class _DecoderOnly:
    """A Whisper model whose forward pass reuses one encoded window (for whisper.timing.find_alignment)."""

    def __init__(self, model: whisper.Whisper, encoded: torch.Tensor) -> None:
        self._model = model
        self._encoded = encoded

    def __call__(self, mel: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._model.decoder(tokens, self._encoded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


__all__ = [
    "BACKEND",
    "REAL_MIN_WIDTH",
    "TINY_MODEL_ID",
    "OpenAIWhisperBackend",
    "alignment_heads_dump",
    "suppress_tokens",
    "tokenizer_for",
]
