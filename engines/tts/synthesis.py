"""The synthesis core shared by plain and streamed generation: check a request, plan it under the GPU lock,
speak it sentence by sentence, and finish the result (saved when asked).

``TTSEngine.synthesize`` and ``TTSEngine.synthesize_stream`` are thin doors onto ``Synthesizer``; the only
difference between them is whether a sentence is spoken whole (``inference.speak``) or chunk by chunk into a
``SynthesisStream`` (``inference.speak_stream``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from config import Settings
from engines.core.device import oom_guard
from engines.core.names import xtts_language
from engines.core.options import TTSOptions
from engines.core.progress import LogFn, ProgressFn, log_info, no_progress
from engines.tts import sidecar
from engines.tts.checks import check_request, check_speaker, text_notices
from engines.tts.inference import StopFlag, inference_kwargs, seed_everything, speak, speak_stream
from engines.tts.latents import LatentCache
from engines.tts.models import XttsModels
from engines.tts.result import TTSResult
from engines.tts.retakes import RetakeChecker, SentenceTakes, reseeded, take_seed
from engines.tts.stream import StreamFeed, SynthesisStream, check_cancel
from engines.tts.textsplit import DEFAULT_CHAR_LIMIT, split_text

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

    from engines.tts.pronounce import PronunciationMap

log = logging.getLogger(__name__)

PAUSE_SECONDS = 0.2  # silence between sentences
REFERENCE_NAME = "reference.wav"  # a model dir may ship its own voice


@dataclass
class Request:
    """One checked synthesis request (``Synthesizer.prepare``): what generation needs, nothing loaded yet."""

    text: str
    language: str
    model_id: str
    reference: list[Path]
    speaker: str | None
    options: TTSOptions
    notices: list[str]
    pronunciation: dict[str, Any] | None = None  # the rules that rewrote the text, when any fired


@dataclass
class Plan:
    """What one request speaks with, worked out under the GPU lock (``Synthesizer.plan``)."""

    latent: torch.Tensor
    embedding: torch.Tensor
    cached: bool
    references: list[dict[str, Any]]
    chunks: list[str]
    seed: int
    sample_rate: int
    kwargs: dict[str, Any]  # the inference keywords, built once for every sentence (``inference_kwargs``)
    latents_seconds: float


@dataclass
class Generated:
    """What a finished stream producer hands to the consumer's ``finish``."""

    plan: Plan
    gen_seconds: float
    load_seconds: float
    first_audio_seconds: float


class Synthesizer:
    """Request checks, planning and sentence-wise generation over one model store and one latent cache."""

    def __init__(
        self, settings: Callable[[], Settings], gpu_lock: threading.RLock, models: XttsModels, latents: LatentCache
    ) -> None:
        """
        Args:
            settings: returns the engine's current settings (read on each use, so a replaced one applies).
            gpu_lock: held from loading the model to the last sentence.
            models: where models are found and loaded.
            latents: the voice cache.
        """
        self._settings = settings
        self.gpu_lock = gpu_lock
        self.models = models
        self.latents = latents

    # ------------------------------------------------------------------ the two doors

    def synthesize(
        self,
        text: str,
        *,
        model_id: str | None,
        reference: Sequence[Path | str] | None,
        speaker: str | None,
        options: TTSOptions | None,
        save: bool,
        progress: ProgressFn | None,
        log_fn: LogFn | None,
        cancel: threading.Event | None,
        retakes: RetakeChecker | None = None,
        pronunciation: PronunciationMap | None = None,
    ) -> TTSResult:
        """See ``TTSEngine.synthesize``."""
        progress = progress or no_progress
        log_fn = log_fn or log_info
        # Validate before loading anything: cheap answers for bad input.
        req = self._checked_request(text, model_id, reference, speaker, options, retakes, pronunciation)
        checked: list[SentenceTakes] = []
        with self._opening(req, progress, log_fn, cancel) as (model, plan, load_seconds, start):
            check = functools.partial(check_cancel, cancel)
            speech = self._speech(model, req, plan, progress, check, streamed=False, retakes=retakes, checked=checked)
            pieces = list(speech)
            audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
            gen_seconds = time.perf_counter() - start
        progress(1.0, desc="Done")
        return self.finish(
            req, plan, audio, gen_seconds, load_seconds, save=save, retakes=_retake_record(req, retakes, checked)
        )

    def synthesize_stream(
        self,
        text: str,
        *,
        model_id: str | None,
        reference: Sequence[Path | str] | None,
        speaker: str | None,
        options: TTSOptions | None,
        save: bool,
        progress: ProgressFn | None,
        log_fn: LogFn | None,
        cancel: threading.Event | None,
        pronunciation: PronunciationMap | None = None,
        retakes: RetakeChecker | None = None,
    ) -> SynthesisStream:
        """See ``TTSEngine.synthesize_stream``."""
        started = time.perf_counter()
        req = self._checked_request(text, model_id, reference, speaker, options, retakes, pronunciation)
        progress = progress or no_progress
        log_fn = log_fn or log_info
        checked: list[SentenceTakes] = []

        def generate(feed: StreamFeed) -> Generated:
            return self._produce(req, feed, progress, log_fn, started, retakes, checked)

        def finish(audio: np.ndarray, done: Generated) -> TTSResult:
            return self.finish(
                req,
                done.plan,
                audio,
                done.gen_seconds,
                done.load_seconds,
                save=save,
                first_audio_seconds=done.first_audio_seconds,
                retakes=_retake_record(req, retakes, checked),
            )

        return SynthesisStream(generate, finish, cancel=cancel)

    # ------------------------------------------------------------------ the shared steps

    def _checked_request(
        self,
        text: str,
        model_id: str | None,
        reference: Sequence[Path | str] | None,
        speaker: str | None,
        options: TTSOptions | None,
        retakes: RetakeChecker | None,
        pronunciation: PronunciationMap | None,
    ) -> Request:
        """The opening both doors share, before anything loads: the pronunciation map, every request check, and the
        retake checker's language check."""
        text, spoken = self._pronounce(text, options, pronunciation)
        req = self.prepare(text, model_id=model_id, reference=reference, speaker=speaker, options=options)
        req.pronunciation = spoken
        if retakes is not None:
            retakes.check_language(req.language)
        return req

    def _pronounce(
        self, text: str, options: TTSOptions | None, pronunciation: PronunciationMap | None
    ) -> tuple[str, dict[str, Any] | None]:
        """The text as the pronunciation map says to speak it, and the record of the rules that fired."""
        if not pronunciation or not isinstance(text, str):
            return text, None
        language = xtts_language((options or self._settings().generation).language)
        return pronunciation.record(text, language)

    def prepare(
        self,
        text: str,
        *,
        model_id: str | None,
        reference: Sequence[Path | str] | None,
        speaker: str | None,
        options: TTSOptions | None,
    ) -> Request:
        """Every check that needs no model: text, language, options, voice, model folder (no load, no lock).

        Raises:
            InputError / AudioError / MissingWeightsError: see ``TTSEngine.synthesize``.
        """
        settings = self._settings()
        options = options or settings.generation
        model_id = self.models.resolve(model_id)
        refs = [Path(p) for p in (reference or [])]
        speaker = (speaker or "").strip() or None
        folder = self.models.model_dir(model_id)  # raises for broken folders; None = base not downloaded yet
        model_reference = folder / REFERENCE_NAME if folder is not None else None
        if model_reference is not None and not model_reference.is_file():
            model_reference = None
        known_speakers = self.models.speakers(model_id) if folder is not None else None
        text, language = check_request(
            text,
            options,
            reference=refs,
            speaker=speaker,
            max_chars=settings.max_text_chars,
            speakers=known_speakers,
            has_model_reference=model_reference is not None,
            languages=self.models.languages(model_id) if folder is not None else None,
        )
        notices: list[str] = text_notices(text, language)
        if not refs and not speaker and model_reference is not None:
            refs = [model_reference]
            notices.append(f"No voice given: using the model's own {REFERENCE_NAME}.")
        return Request(text, language, model_id, refs, speaker, options, notices)

    def plan(self, model: Xtts, req: Request, progress: ProgressFn, stop: StopFlag | None) -> Plan:
        """Voice latents, text pieces, the seed (RNG seeded here) and the inference keywords; caller holds the lock.

        Args:
            stop: when given, GPT generation ends within one token step once it is set.
        """
        start = time.perf_counter()
        progress(0.1, desc="Computing the voice")
        if req.speaker:
            entry = model.speaker_manager.speakers[req.speaker]
            latent, embedding = entry["gpt_cond_latent"], entry["speaker_embedding"]
            cached, ref_info = True, []
        else:
            weights = self.models.weights_stamp(req.model_id)
            voice, cached = self.latents.voice(model, weights, req.reference)
            latent, embedding, ref_info = voice.gpt_cond_latent, voice.speaker_embedding, voice.references
            req.notices.extend(voice.notices)
        # Cached voices live on the CPU; coqui moves them to the model's device on every sentence, so move once.
        device = model.device
        latent, embedding = latent.to(device), embedding.to(device)
        latents_seconds = time.perf_counter() - start
        options = req.options
        limit = model.tokenizer.char_limits.get(req.language.split("-")[0], DEFAULT_CHAR_LIMIT)
        chunks = split_text(req.text, req.language, limit, per_sentence=options.split_sentences)
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        seed_everything(seed)
        kwargs = inference_kwargs(model, options, stop)
        sr = int(model.args.output_sample_rate)
        return Plan(latent, embedding, cached, ref_info, chunks, seed, sr, kwargs, latents_seconds)

    @contextlib.contextmanager
    def _opening(
        self,
        req: Request,
        progress: ProgressFn,
        log_fn: LogFn,
        stop: StopFlag | None,
        on_lock: Callable[[], None] | None = None,
    ) -> Iterator[tuple[Xtts, Plan, float, float]]:
        """What every synthesis opens with: under the GPU lock (``on_lock`` runs once it is held), load the model,
        check the speaker, and plan inside the OOM guard, which stays on for the caller's generation.

        Yields:
            (model, plan, load seconds, the time generation started: before the voice latents)
        """
        with self.gpu_lock:
            if on_lock is not None:
                on_lock()
            load_start = time.perf_counter()
            model = self.models.load(req.model_id, progress=progress, log_fn=log_fn)
            load_seconds = time.perf_counter() - load_start
            if req.speaker:
                check_speaker(req.speaker, self.models.speakers(req.model_id))
            with oom_guard(
                "speech synthesis",
                "Use shorter text, turn on sentence splitting, or free GPU memory "
                "(unload other models in the System panel).",
            ):
                start = time.perf_counter()
                yield model, self.plan(model, req, progress, stop), load_seconds, start

    def _speech(
        self,
        model: Xtts,
        req: Request,
        plan: Plan,
        progress: ProgressFn,
        check: Callable[[], None],
        *,
        streamed: bool,
        retakes: RetakeChecker | None = None,
        checked: list[SentenceTakes] | None = None,
    ) -> Generator[np.ndarray, None, None]:
        """The request's audio in order, sentence by sentence with ``PAUSE_SECONDS`` of silence between them:
        each sentence whole, or chunk by chunk when ``streamed``. ``check()`` runs between steps; what it raises
        ends generation. With ``retakes`` each sentence is made whole, checked and retaken before it is given
        (streamed, it is sent sentence by sentence once it passed); its record goes to ``checked``."""
        pause = np.zeros(int(PAUSE_SECONDS * plan.sample_rate), dtype=np.float32)
        total = len(plan.chunks)
        for i, chunk in enumerate(plan.chunks):
            check()
            progress(0.15 + 0.85 * i / total, desc=f"Sentence {i + 1}/{total}")
            if i:
                yield pause
            voice = (model, chunk, req.language, plan.latent, plan.embedding, plan.kwargs)
            if retakes is not None and checked is not None:
                pieces = _checked(voice, plan.seed, plan.sample_rate, i, retakes, checked, check)
            else:
                pieces = speak_stream(*voice) if streamed else _whole(*voice)
            try:
                for wav in pieces:
                    check()  # stopped mid-sentence: no further vocoder pass for it
                    yield wav
            finally:
                pieces.close()
        check()

    def _produce(
        self,
        req: Request,
        feed: StreamFeed,
        progress: ProgressFn,
        log_fn: LogFn,
        started: float,
        retakes: RetakeChecker | None = None,
        checked: list[SentenceTakes] | None = None,
    ) -> Generated:
        """The producer of a stream (its own thread): load, plan and emit sentence by sentence under the GPU lock."""
        with self._opening(req, progress, log_fn, feed.stopping, on_lock=feed.check) as (
            model,
            plan,
            load_seconds,
            start,
        ):
            feed.sample_rate = plan.sample_rate
            speech_pieces = self._speech(
                model, req, plan, progress, feed.check, streamed=True, retakes=retakes, checked=checked
            )
            with contextlib.closing(speech_pieces) as speech:
                for piece in speech:
                    feed.emit(piece)
            gen_seconds = time.perf_counter() - start
        progress(1.0, desc="Done")
        first = feed.first_chunk_at if feed.first_chunk_at is not None else time.perf_counter()
        return Generated(plan, gen_seconds, load_seconds, first - started)

    def finish(
        self,
        req: Request,
        plan: Plan,
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
            loaded = self.models.holder.loaded
            result.path, result.sidecar = sidecar.save(
                result,
                self._settings().workspace_sub("outputs", "tts"),
                text=req.text,
                language=req.language,
                speaker=req.speaker,
                references=plan.references,
                options=req.options,
                model_dir=self.models.model_dir(req.model_id),
                device=loaded.device if loaded else None,
                load_seconds=load_seconds,
                latents_seconds=plan.latents_seconds,
            )
        log.info(
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


def _whole(
    model: Xtts, chunk: str, language: str, latent: torch.Tensor, embedding: torch.Tensor, kwargs: dict[str, Any]
) -> Generator[np.ndarray, None, None]:
    """One sentence spoken whole, as a one-piece generator (the shape ``speak_stream`` has)."""
    yield speak(model, chunk, language, latent, embedding, kwargs)


def _checked(
    voice: tuple[Xtts, str, str, torch.Tensor, torch.Tensor, dict[str, Any]],
    seed: int,
    sample_rate: int,
    index: int,
    retakes: RetakeChecker,
    checked: list[SentenceTakes],
    check: Callable[[], None],
) -> Generator[np.ndarray, None, None]:
    """One sentence through the retake loop, as a one-piece generator: take 0 continues the request's random
    stream (an unchecked request sounds the same), retake k is seeded with ``take_seed`` and leaves the stream
    as take 0 left it."""

    def take(k: int) -> tuple[np.ndarray, int]:
        if k == 0:
            return speak(*voice), seed
        check()
        retake_seed = take_seed(seed, index, k)
        with reseeded(retake_seed):
            return speak(*voice), retake_seed

    wav, record = retakes.best(take, voice[1], voice[2], sample_rate, index)
    checked.append(record)
    yield wav


def _retake_record(req: Request, retakes: RetakeChecker | None, checked: list[SentenceTakes]) -> dict[str, Any] | None:
    """The retake report for the result and sidecar (None without retakes); its summary joins the notices when a
    sentence was retaken or still fails."""
    if retakes is None:
        return None
    report = retakes.report(checked)
    if report.retaken or report.failed:
        req.notices.append(report.summary())
    return report.as_dict()
