"""XTTS v2 text-to-speech: ``TTSEngine``, the one object pages, the /v1 API, Eval and scripts call.

Runs without the UI::

    from config import load_settings
    from engines import Engines
    eng = Engines.create(load_settings())
    result = eng.tts.synthesize("Hello there.", reference=[Path("me.wav")])
    print(result.path, result.rtf)

``TTSEngine`` is a facade; each job lives in its own module of ``engines.tts``:

- ``models``: the model catalogue, model folders, loading (``XttsModels``);
- ``checks``: request checks that need no model (torch-free); ``references``: reading reference clips;
- ``conditioning``: the reference-cut rule, voice latents, speaker embeddings; ``latents``: their cache;
- ``synthesis``: the core of plain and streamed synthesis (``Synthesizer``); ``inference``: the calls into
  coqui; ``stream``: the streaming thread and queue; ``textsplit``: sentence splitting;
- ``sidecar``: the saved WAV and its JSON; ``voices``: saved voices (``VoiceLibrary``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import Settings
from engines.core.catalog import TINY_ID
from engines.core.device import oom_guard, resolve_device
from engines.core.options import TTSOptions
from engines.core.progress import LogFn, ProgressFn
from engines.tts.checks import check_request, check_speaker, text_notices
from engines.tts.conditioning import embedding_input, speaker_embedding
from engines.tts.inference import STREAM_CHUNK_TOKENS, STREAM_OVERLAP_SAMPLES
from engines.tts.latents import LatentCache
from engines.tts.models import XttsModels
from engines.tts.references import check_reference_audio
from engines.tts.result import TTSResult
from engines.tts.stream import SynthesisStream
from engines.tts.synthesis import Synthesizer
from engines.tts.voices import VoiceLibrary

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

    from engines.tiny import TinyModels
    from engines.tts.pronounce import PronunciationMap
    from engines.tts.retakes import RetakeChecker


class TTSEngine:
    """XTTS v2 behind one model holder; safe to call from several threads (the GPU lock serialises).

    ``settings`` may be replaced at any time: every collaborator reads it on each use.
    """

    def __init__(self, settings: Settings, gpu_lock: threading.RLock, tiny: TinyModels | None = None) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self.tiny = tiny
        self.models = XttsModels(self._current_settings, gpu_lock, tiny)
        self.holder = self.models.holder
        self.latents = LatentCache(self._current_settings)
        self.voices = VoiceLibrary(self._current_settings)
        self.synthesis = Synthesizer(self._current_settings, gpu_lock, self.models, self.latents)

    def _current_settings(self) -> Settings:
        return self.settings

    # ------------------------------------------------------------------ models

    @property
    def models_dir(self) -> Path:
        return self.models.models_dir

    def default_model(self) -> str:
        """The tiny model in tiny mode, else settings.tts_model."""
        return self.models.default_model()

    def list_models(self) -> list[tuple[str, str]]:
        """(label, model_id) for the model picker; workspace/models is re-scanned on each call."""
        return self.models.list_models()

    def find_base_model(self) -> Path | None:
        """The folder holding XTTS v2's files, when already on this machine (never downloads)."""
        return self.models.find_base_model()

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
        return self.models.model_dir(model_id, download=download, progress=progress, log_fn=log_fn)

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
        return self.models.load(model_id, progress=progress, log_fn=log_fn)

    def unload(self) -> bool:
        """Free the loaded TTS model. Returns True when one was loaded."""
        return self.models.unload()

    def speakers(self, model_id: str | None = None) -> list[str]:
        """Built-in speakers of a model (read from speakers_xtts.pth; no model load, no download)."""
        return self.models.speakers(model_id)

    def clear_latent_cache(self) -> int:
        """Forget every cached voice. Returns how many entries were dropped."""
        return self.latents.clear()

    # ------------------------------------------------------------------ synthesis

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
        return self.synthesis.synthesize(
            text,
            model_id=model_id,
            reference=reference,
            speaker=speaker,
            options=options,
            save=save,
            progress=progress,
            log_fn=log_fn,
            cancel=cancel,
            retakes=retakes,
            pronunciation=pronunciation,
        )

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
        retakes: RetakeChecker | None = None,
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
                ``synthesize``.
            retakes: as for ``synthesize``; each sentence is checked (and retaken) before it is sent, so audio
                comes sentence by sentence instead of chunk by chunk.
            cancel: set by the caller to give up: the stream raises ``CancelledError``, nothing is saved.

        Returns:
            A ``SynthesisStream``: iterate it for float32 chunks; ``.result`` once it is exhausted.

        Raises:
            InputError / AudioError / MissingWeightsError: bad input, before anything is generated.
        """
        return self.synthesis.synthesize_stream(
            text,
            model_id=model_id,
            reference=reference,
            speaker=speaker,
            options=options,
            save=save,
            progress=progress,
            log_fn=log_fn,
            cancel=cancel,
            pronunciation=pronunciation,
            retakes=retakes,
        )

    # ------------------------------------------------------------------ speaker embedding (Eval's SIM)

    def speaker_embedding(
        self, audio: Path | np.ndarray, sr: int | None = None, model_id: str | None = None
    ) -> np.ndarray:
        """XTTS's speaker-encoder embedding of a clip, L2-normalised (512 values).

        A file is a reference clip and is read the way synthesis reads it: decoded and refused like a
        reference (``references.decode_reference``), then cut to the model's ``max_ref_len`` and
        level-normalised when the model asks for it (``conditioning.conditioning_audio``, the cut synthesis
        uses). So a 12-minute reference costs what its first seconds cost, and SIM compares against the voice
        the model was really given. An array (a generated clip) is embedded whole.

        Args:
            audio: a reference file path, or a mono float array.
            sr: the array's sample rate (required with an array).
            model_id: whose speaker encoder to use; None = the loaded or default model.

        Returns:
            float32 vector of unit length.

        Raises:
            InputError / AudioError: no sample rate, empty, too short or silent audio.
        """
        samples, rate, reference = embedding_input(audio, sr, self.settings)
        if model_id is None and self.holder.loaded is not None:
            model_id = self.holder.loaded.key
        with self.gpu_lock:
            model = self.load(model_id)
            with oom_guard("the speaker embedding", "Free GPU memory (System panel)."):
                return speaker_embedding(model, samples, rate, reference=reference)

    # ------------------------------------------------------------------ saved voices

    def list_voices(self) -> list[str]:
        """Saved voices (workspace/voices) then shipped ones (samples/voices), by name."""
        return self.voices.names()

    def voice_files(self, name: str) -> list[Path]:
        """The reference clips of a saved voice.

        Raises:
            InputError: unknown or unsafe name.
        """
        return self.voices.files(name)

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
        return self.voices.save(name, files, overwrite=overwrite)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """What the System panel shows about TTS."""
        loaded = self.holder.loaded
        return {
            "loaded_model": loaded.key if loaded else None,
            "device": loaded.device if loaded else resolve_device(self.settings.device),
            "load_seconds": round(loaded.load_seconds, 2) if loaded else None,
            "latent_cache_entries": len(self.latents),
            "latent_cache_size": self.settings.latent_cache_size,
        }


# Where callers have always found them (each is defined once, in the module named above).
__all__ = [
    "STREAM_CHUNK_TOKENS",
    "STREAM_OVERLAP_SAMPLES",
    "TINY_ID",
    "TTSEngine",
    "TTSOptions",
    "TTSResult",
    "check_reference_audio",
    "check_request",
    "check_speaker",
    "text_notices",
]
