"""Speech recognition with Whisper: one resident model, file/array/batch transcription.

``ASREngine`` runs from a script or a notebook without the UI::

    engine = ASREngine(load_settings(), threading.RLock())
    t = engine.transcribe_file("talk.m4a", ASROptions(language="en"))
    save_outputs(t, Path("out"), "talk")      # talk.txt / .srt / .vtt / .json

Before Whisper hears anything, a voice-activity detector (``engines.asr.vad``) finds where speech is: audio
without speech is never decoded (Whisper hallucinates "Thank you." on silence and noise), and long
stretches without speech are skipped (``clip_timestamps``), so times stay those of the original file.
Each 30 s window is decoded with Whisper's temperature fallback, and a window whose text is still a
repetition loop afterwards is dropped with a notice.

Two backends behind one interface (``engines.asr.backends.base.Backend``), picked by model id
(``engines.asr.backends.registry``): openai-whisper (sizes, ``.pt`` files; the papers' exact recipe, the
default) and faster-whisper / CTranslate2 (``"faster-whisper:<size or folder>"``, or a CTranslate2 folder).
This engine owns what both share: the one resident model, the GPU lock, the voice-activity gate, the
fallback ladder and loop guard (``engines.asr.guards``), and the batched path that redoes failing results
one by one. Options live in ``engines.asr.options``, transcripts and their files in ``engines.asr.transcript``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from config import Settings
from engines.asr import packing
from engines.asr.backends.base import OOM_ADVICE, Backend, DecodeRequest, DecodeResult, RawWord, TextTokenizer
from engines.asr.backends.base import oom_guard_any as guard
from engines.asr.backends.faster_whisper import FasterWhisperBackend
from engines.asr.backends.openai_whisper import (
    SAMPLE_RATE,
    TINY_MODEL_ID,
    OpenAIWhisperBackend,
    alignment_heads_dump,
)
from engines.asr.backends.registry import Registry
from engines.asr.guards import (
    THRESHOLDS,
    as_mono,
    clock,
    empty,
    label,
    loop_reason,
    needs_fallback,
    temperatures,
    transcript,
    window_is_silent,
)
from engines.asr.options import TASKS, ASROptions, check_options, normalize_language, whisper_languages
from engines.asr.transcript import Segment, Transcript, Word
from engines.asr.vad import SpeechCheck, check_piece, check_speech, speech_seconds
from engines.core.audio import load_audio
from engines.core.device import resolve_device
from engines.core.errors import AudioError, InputError
from engines.core.holder import ModelHolder
from engines.core.progress import ProgressFn
from engines.tiny import TinyModels

T = TypeVar("T")

# The tiny random model never emits end-of-text, so every window would run to Whisper's 224-token limit of
# gibberish; capping it keeps tiny-mode runs (tests, UI checks, the eval loop) fast. Real models are not capped.
# Its gibberish also fails every quality rule (improbable tokens, repeated n-grams), so for it a window is
# decoded once, at the first temperature, and never dropped as a loop: tiny mode tests plumbing, not quality.
TINY_MAX_TOKENS = 32


@dataclass
class _Pending:
    """A short clip on its way through the batched path."""

    index: int
    source: str  # the caller's label, or "clip <index>", for notices
    label: str | None  # the caller's label only (Transcript.source)
    audio: np.ndarray
    speech: SpeechCheck
    audio_seconds: float
    detect_mel: Any  # the backend's features for language detection (Window.detect)
    decode_mel: Any  # the backend's features for decoding (Window.decode)
    duration: float  # content duration (segment end), as the sequential transcribe reports it
    language: str | None = None
    seconds: float = 0.0


class ASREngine:
    """Whisper behind one ModelHolder: lazy load, unload on switch, every model call under the GPU lock."""

    def __init__(self, settings: Settings, gpu_lock: threading.RLock, tiny: TinyModels | None = None) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self.tiny = tiny
        # one ASR model resident across all backends: a whisper.Whisper or a faster_whisper.WhisperModel
        self.holder: ModelHolder[Any] = ModelHolder("asr")
        self.openai = OpenAIWhisperBackend(settings, self.models_dir, tiny)  # also: Whisper size downloads
        self.faster = FasterWhisperBackend(settings, self.models_dir)
        self.backends = Registry(self.openai, self.faster)

    # ----- models -----

    @property
    def cache_dir(self) -> Path:
        """Where Whisper sizes are downloaded to / looked up in."""
        return self.openai.cache_dir

    @property
    def models_dir(self) -> Path:
        """Local checkpoints (*.pt) and CTranslate2 folders the model picker lists: workspace/models/whisper/."""
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
        return self.backends.list_models()

    def _checkpoint(self, model_id: str) -> str:
        """openai-whisper's size name or .pt path for an id (engines.eval's provenance reads it)."""
        return self.openai.checkpoint(model_id)

    def _load(self, model_id: str, device: str) -> Any:
        return self.backends.for_id(model_id).load(model_id, device)

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
        with self.gpu_lock, guard(f"loading Whisper {model_id}", OOM_ADVICE):
            return self.holder.get(model_id, device, self._load)

    def download(self, size: str, progress: ProgressFn | None = None) -> Path:
        """Fetch a Whisper size into the cache folder without loading it (whisper's own download: checked by
        SHA-256, tqdm progress, so a ``gr.Progress(track_tqdm=True)`` shows it). A file already there is kept.

        Raises:
            InputError: not a Whisper size. MissingWeightsError: offline, refused, or a corrupt download.
        """
        return self.openai.download(size, progress)

    def downloaded(self, size: str) -> bool:
        """Whether a Whisper size's checkpoint is in the cache folder."""
        return self.openai.downloaded(size)

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
        return dict(self.backends.for_model(model).info(model))

    def provenance(self, model_id: str | None = None) -> dict[str, Any]:
        """What a report records about a model without loading it: its id, backend, library versions, weights
        file and SHA-256 (when on disk), plus compute type and device when it is the resident model."""
        model_id = model_id or self.default_model()
        record = {"model": model_id, **self.backends.for_id(model_id).provenance(model_id)}
        resident = self._resident(model_id)
        if resident is not None:
            record.update(self.backends.for_model(resident).info(resident))
        return record

    # ----- transcription -----

    def _sample_len(self, model_id: str | None, options: ASROptions) -> int | None:
        if options.max_tokens is not None:
            return int(options.max_tokens)
        return TINY_MAX_TOKENS if (model_id or self.default_model()) == TINY_MODEL_ID else None

    def _resident(self, model_id: str) -> Any | None:
        """The loaded model when it is this id's, else None."""
        loaded, model = self.holder.loaded, self.holder.model
        return model if loaded is not None and model is not None and loaded.key == model_id else None

    def _is_multilingual(self, model_id: str) -> bool:
        backend = self.backends.for_id(model_id)
        answer = backend.is_multilingual(model_id, self._resident(model_id))
        if answer is None:  # only the model itself can tell
            answer = backend.is_multilingual(model_id, self.load(model_id))
        return bool(answer)

    def random_weights(self, model_id: str | None) -> bool:
        """Whether a model is a random-weight test model (the tiny one, under any name or path), without
        loading it: sizes and CTranslate2 conversions are trained weights; a checkpoint is judged by its width.
        """
        model_id = model_id or self.default_model()
        return self.backends.for_id(model_id).random_weights(model_id)

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
        backend = self.backends.for_id(model_id)
        name, instead = backend.display_name(model_id), backend.multilingual_alternative(model_id)
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
        audio = as_mono(audio_16k, source)
        self.check_language(model_id, options.language, options.task)
        model = self.load(model_id)
        start = time.perf_counter()
        speech = check_speech(audio, vad=options.vad)
        if options.pack and speech.regions and len(audio) > packing.PACK_SECONDS * SAMPLE_RATE:
            return self._transcribe_pieces(audio, options, model_id, speech, source, start)
        return self._transcribe(model, model_id, audio, options, speech, source, start)

    def _transcribe_pieces(
        self,
        audio: np.ndarray,
        options: ASROptions,
        model_id: str | None,
        speech: SpeechCheck,
        source: str | None,
        start: float,
    ) -> Transcript:
        """A long recording cut at pauses into pieces under 28 s (the detector's speech regions, merged), the
        pieces transcribed together by ``transcribe_batch``, one segment per piece at its time in the recording."""
        cuts = packing.pieces(speech.regions, len(audio) / SAMPLE_RATE)
        clips = [audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in cuts]
        labels = [f"{label(source)} {clock(a)}-{clock(b)}" for a, b in cuts]
        checks = [check_piece(speech, a, b) for a, b in cuts]  # the detector already ran over the recording
        parts = self.transcribe_batch(clips, options, model_id, sources=labels, checks=checks)
        segments: list[Segment] = []
        notices: list[str] = []
        for (offset, _), part in zip(cuts, parts):
            if part.notice:
                notices.append(part.notice)
            for seg in part.segments:
                words = [dataclasses.replace(w, start=w.start + offset, end=w.end + offset) for w in seg.words or []]
                segments.append(
                    dataclasses.replace(seg, start=seg.start + offset, end=seg.end + offset, words=words or seg.words)
                )
        audio_seconds = len(audio) / SAMPLE_RATE
        seconds = time.perf_counter() - start
        language = next((p.language for p in parts if p.language and p.text), options.language)
        return Transcript(
            text=" ".join(p.text for p in parts if p.text),
            language=language,
            segments=segments,
            audio_seconds=audio_seconds,
            seconds=seconds,
            rtf=seconds / audio_seconds,
            notice=" ".join(notices) or None,
            source=source,
        )

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
        """The sequential path: the VAD gate, then the model's backend over the spans to decode with the ladder
        and thresholds, then the loop guard and the notice."""
        audio_seconds = len(audio) / SAMPLE_RATE
        if speech.reason:
            return empty(
                audio_seconds,
                time.perf_counter() - start,
                options.language,
                f"No speech detected in {label(source)}: {speech.reason}. Nothing was transcribed.",
                source,
            )
        backend = self.backends.for_model(model)
        rules = backend.quality_rules(model)
        request = DecodeRequest(
            options=options,
            temperatures=temperatures(options) if rules else (options.temperature,),
            sample_len=self._sample_len(model_id, options),
            thresholds=THRESHOLDS,
            speech=speech,
        )
        with self.gpu_lock:
            result = backend.transcribe(model, audio, request)
        return transcript(result, rules, audio_seconds, time.perf_counter() - start, source)

    def transcribe_batch(
        self,
        clips_16k: list[np.ndarray],
        options: ASROptions = ASROptions(),
        model_id: str | None = None,
        batch_size: int = 16,
        sources: Sequence[str] | None = None,
        checks: Sequence[SpeechCheck] | None = None,
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
            checks: the voice-activity checks already made for the clips (pieces of one recording); None = run
                the detector on each.

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
        if checks is not None and len(checks) != len(clips_16k):
            raise InputError(f"{len(checks)} speech checks for {len(clips_16k)} clips.")
        labels = [str(s) for s in sources] if sources is not None else [f"clip {i}" for i in range(len(clips_16k))]
        given = [name if sources is not None else None for name in labels]  # Transcript.source
        clips = [as_mono(clip, labels[i] if sources is not None else f"Clip {i}") for i, clip in enumerate(clips_16k)]
        self.check_language(model_id, options.language, options.task)
        model = self.load(model_id)
        backend = self.backends.for_model(model)
        text_only = dataclasses.replace(options, segment_timestamps=False)
        rules = backend.quality_rules(model)
        fallback = rules and len(temperatures(options)) > 1
        results: list[Transcript | None] = [None] * len(clips)
        pending: list[_Pending] = []
        for i, audio in enumerate(clips):
            audio_seconds = len(audio) / SAMPLE_RATE
            start = time.perf_counter()
            speech = checks[i] if checks is not None else check_speech(audio, vad=options.vad)
            if speech.reason:
                results[i] = empty(
                    audio_seconds,
                    time.perf_counter() - start,
                    options.language,
                    f"No speech detected in {labels[i]}: {speech.reason}. Nothing was transcribed.",
                    given[i],
                )
                continue
            if options.word_timestamps or len(audio) > N_SAMPLES + HOP_LENGTH:
                results[i] = self._transcribe(model, model_id, audio, options, speech, given[i], start)
                continue
            if options.temperature > 0 or not speech.whole:  # short, but not one greedy window: text-only, alone
                results[i] = self._transcribe(model, model_id, audio, text_only, speech, given[i], start)
                continue
            window = backend.window(model, audio)
            if window is None:  # more than one window: the sequential transcribe would seek on
                results[i] = self._transcribe(model, model_id, audio, options, speech, given[i], start)
                continue
            pending.append(
                _Pending(
                    index=i,
                    source=labels[i],
                    label=given[i],
                    audio=audio,
                    speech=speech,
                    audio_seconds=audio_seconds,
                    detect_mel=window.detect,
                    decode_mel=window.decode,
                    duration=window.seconds,
                    seconds=time.perf_counter() - start,
                )
            )

        resolved = model_id or self.default_model()
        if options.language is not None or not backend.is_multilingual(resolved, model):
            for item in pending:
                item.language = options.language or "en"
        else:
            for chunk in _chunks(pending, batch_size):
                start = time.perf_counter()
                with self.gpu_lock, guard("Whisper language detection", OOM_ADVICE):
                    languages = backend.detect_languages(model, [p.detect_mel for p in chunk])
                share = (time.perf_counter() - start) / len(chunk)
                for item, language in zip(chunk, languages):
                    item.language = language
                    item.seconds += share

        by_language: dict[str, list[_Pending]] = {}
        for item in pending:
            by_language.setdefault(item.language or "en", []).append(item)  # every item has one by now
        beam = options.beam_size
        decode_size = 1 if beam is not None and beam > 1 and not backend.batches_beam_search else batch_size
        sample_len = self._sample_len(model_id, options)
        redo: list[_Pending] = []
        for language, items in by_language.items():
            tokenizer = backend.tokenizer(model, language, options.task)
            if options.pack and len(items) > 1:
                items = self._decode_packed(
                    model, backend, items, language, options, sample_len, batch_size, rules, results
                )
            for chunk in _chunks(items, decode_size):
                start = time.perf_counter()
                with self.gpu_lock, guard(f"batched Whisper decoding ({len(chunk)} clips)", OOM_ADVICE):
                    decoded = backend.decode_batch(model, [p.decode_mel for p in chunk], language, options, sample_len)
                share = (time.perf_counter() - start) / len(chunk)
                for item, res in zip(chunk, decoded):
                    item.seconds += share
                    if fallback and needs_fallback(res.compression_ratio, res.avg_logprob, res.no_speech_prob):
                        redo.append(item)  # the sequential transcribe would climb the temperature ladder here
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

    def _decode_packed(
        self,
        model: Any,
        backend: Backend[Any],
        items: list[_Pending],
        language: str,
        options: ASROptions,
        sample_len: int | None,
        batch_size: int,
        rules: bool,
        results: list[Transcript | None],
    ) -> list[_Pending]:
        """Decode clips of one language packed into shared windows (engines.asr.packing), filling ``results``;
        returns the clips packing could not vouch for, which the caller decodes alone."""
        groups = packing.plan([len(p.audio) for p in items])
        alone = [items[g[0]] for g in groups if len(g) == 1]
        packs = [packing.build(g, [p.audio for p in items]) for g in groups if len(g) > 1]
        for chunk in _chunks(packs, batch_size):
            start = time.perf_counter()
            features = []
            for pack in chunk:
                window = backend.window(model, pack.audio)
                assert window is not None  # a pack fits PACK_SECONDS, under one 30 s window
                features.append(window.decode)
            # a pack holds several clips' tokens: the per-window cap grows with it, up to Whisper's 224
            cap = None if sample_len is None else min(sample_len * max(len(p.members) for p in chunk), 224)
            with self.gpu_lock, guard(f"packed Whisper decoding ({len(chunk)} windows)", OOM_ADVICE):
                decoded = backend.decode_packed(model, features, [p.frames for p in chunk], language, options, cap)
            elapsed = time.perf_counter() - start
            for pack, (res, words) in zip(chunk, decoded):
                members = [items[i] for i in pack.members]
                for item in members:
                    item.seconds += elapsed / len(chunk) / len(members)
                if rules and (
                    needs_fallback(res.compression_ratio, res.avg_logprob, res.no_speech_prob)
                    or window_is_silent(res.no_speech_prob, res.avg_logprob)
                ):
                    alone += members  # the one-clip path applies the ladder and the silence rule to each
                    continue
                for item, clip_words in zip(members, packing.assign(words, pack.spans)):
                    speech = speech_seconds(list(item.speech.regions)) or item.audio_seconds
                    if packing.redo_reason(clip_words, speech, loop_guard=rules):
                        alone.append(item)
                    else:
                        results[item.index] = _packed_transcript(item, res, clip_words, options.word_timestamps)
        return sorted(alone, key=lambda p: p.index)


def _packed_transcript(item: _Pending, res: DecodeResult, words: list[RawWord], with_words: bool) -> Transcript:
    """A clip's share of a packed window as a Transcript: one segment over the clip, the window's scores."""
    timed = [Word(w["start"], w["end"], w["word"], w["probability"]) for w in words] if with_words else None
    return _one_segment(item, res, " " + packing.text_of(words), timed)


def _batch_transcript(item: _Pending, res: DecodeResult, tokenizer: TextTokenizer, loop_guard: bool) -> Transcript:
    """A decode result as a Transcript, built the way whisper.transcribe builds its text-only segment."""
    source = item.source
    if window_is_silent(res.no_speech_prob, res.avg_logprob):
        return empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech detected in {source}: Whisper judged it to hold no speech. Nothing was transcribed.",
            item.label,
        )
    text = tokenizer.decode([t for t in res.tokens if t < tokenizer.eot])  # as whisper.transcribe's new_segment
    loop = loop_reason(text, res.compression_ratio) if loop_guard else None
    if loop:
        return empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech transcribed in {source}: what Whisper decoded was a repetition loop "
            f"(0:00.0-{clock(item.duration)}: {loop}) and was dropped.",
            item.label,
        )
    if not text.strip():
        return empty(
            item.audio_seconds,
            item.seconds,
            item.language,
            f"No speech detected in {source}: Whisper decoded no words. Nothing was transcribed.",
            item.label,
        )
    return _one_segment(item, res, text)


def _one_segment(item: _Pending, res: DecodeResult, text: str, words: list[Word] | None = None) -> Transcript:
    """A short clip's Transcript: one segment over the clip, with the scores of the window it was decoded in."""
    segment = Segment(
        0.0,
        item.duration,
        text,
        words=words,
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


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


__all__ = [
    "SAMPLE_RATE",
    "TASKS",
    "TINY_MODEL_ID",
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
