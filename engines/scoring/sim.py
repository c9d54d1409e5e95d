"""Speaker similarity (SIM) from a chosen speaker encoder: an independent verifier, or XTTS's own.

Encoders, by id:
- ``"resemblyzer"``: Resemblyzer's GE2E encoder (256-d, 16 kHz); its weights ship inside the wheel, so it
  works offline. The default.
- ``"wavlm-sv"``: ``microsoft/wavlm-base-plus-sv`` (WavLM + x-vector head, 512-d) through transformers;
  downloaded on request (System panel), never at embed time.
- ``"xtts"``: the generating model's own speaker encoder (``TTSEngine.speaker_embedding``). XTTS is
  trained to match it, so its SIM is self-similarity: not comparable with published SIM.

Numbers from different encoders are different scales: never compare or pool them. ``info()`` says which
encoder (with version and weights hash) produced an embedding, for the report. Never imports gradio.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from config import Settings
from engines.core.audio import is_silent, load_audio, resample, sanitize
from engines.core.device import oom_guard, resolve_device
from engines.core.errors import AudioError, InputError, LabError, MissingWeightsError
from engines.core.holder import ModelHolder
from engines.core.progress import ProgressFn
from engines.core.provenance import installed_version, weights_sha256
from engines.scoring import metrics

log = logging.getLogger(__name__)

SR = 16000  # both independent encoders take 16 kHz
RESEMBLYZER = "resemblyzer"
WAVLM = "wavlm-sv"
XTTS = "xtts"
ENCODER_IDS = (RESEMBLYZER, WAVLM, XTTS)
LABELS = {
    RESEMBLYZER: "Resemblyzer GE2E (256-d)",
    WAVLM: "WavLM-Base+ SV x-vector (512-d)",
    XTTS: "XTTS speaker encoder (self-similarity)",
}
WAVLM_FILES = ("config.json", "preprocessor_config.json")  # besides the weights file
WAVLM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # the main weights file, preferred first
WAVLM_SIZE = "~380 MB"
MIN_SPEECH_SECONDS = 0.3  # what must be left once Resemblyzer's VAD has cut the silences
RESEMBLYZER_BATCH = 64  # partial utterances (1.6 s each) per encoder forward pass when embedding many clips


@dataclass(frozen=True)
class EncoderInfo:
    """Which encoder computed a SIM, for results and reports."""

    id: str  # "resemblyzer" | "wavlm-sv" | "xtts"
    name: str  # human label
    independent: bool  # False for "xtts": the generating model judging itself
    version: str  # package version, or model id + revision
    weights: str  # path of the weights file/folder ("" if n/a)
    sha256: str  # of the main weights file ("" if n/a)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_encoder(encoder: str) -> str:
    """The one guard for encoder ids.

    Raises:
        InputError: not one of ``ENCODER_IDS``.
    """
    name = (encoder or "").strip().lower()
    if name not in ENCODER_IDS:
        raise InputError(f"Unknown speaker-similarity encoder {encoder!r}; use one of: {', '.join(ENCODER_IDS)}.")
    return name


def resemblyzer_weights() -> Path:
    """The GE2E weights file inside the resemblyzer package (found without importing it: that is slow)."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise MissingWeightsError("The resemblyzer package is not installed (pip install -r requirements.lock).")
    return Path(spec.origin).parent / "pretrained.pt"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors, in [-1, 1].

    Raises:
        InputError: different shapes (embeddings of different encoders), or a zero vector.
    """
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise InputError(
            f"Cannot compare embeddings of {x.size} and {y.size} values: they come from different encoders."
        )
    value = metrics.cosine(x, y)  # NaN for a zero vector
    if not np.isfinite(value):
        raise InputError("Cannot compare a zero embedding.")
    return float(np.clip(value, -1.0, 1.0))


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise AudioError("The speaker encoder returned an empty embedding (no usable speech in the clip).")
    return (vector / norm).astype(np.float32)


class SimilarityEngine:
    """Speaker embeddings and their cosine, from one of ``ENCODER_IDS``.

    Models load lazily, once, on the configured device; inference holds the shared GPU lock like every
    engine that runs a model. Thread-safe.
    """

    def __init__(self, settings: Settings, gpu_lock: threading.RLock, tts: Any = None) -> None:
        self.settings = settings
        self.gpu_lock = gpu_lock
        self.tts = tts  # engines.tts.TTSEngine, for "xtts" only
        self._resemblyzer: ModelHolder[Any] = ModelHolder("sim-resemblyzer")
        self._wavlm: ModelHolder[tuple[Any, Any]] = ModelHolder("sim-wavlm")

    # ------------------------------------------------------------------ catalogue

    def encoders(self) -> list[tuple[str, str, bool]]:
        """(id, label, usable now) for each encoder, for dropdowns."""
        return [
            (RESEMBLYZER, LABELS[RESEMBLYZER], True),
            (WAVLM, LABELS[WAVLM], self.downloaded(WAVLM)),
            (XTTS, LABELS[XTTS], self.tts is not None),
        ]

    @property
    def cache_dir(self) -> Path | None:
        """Hugging Face cache used for the WavLM download (None = the hub's default)."""
        root = self.settings.path("metrics_cache_dir")
        return None if root is None else root / "hf"

    def _wavlm_source(self) -> str:
        return self.settings.wavlm_sv_model

    def _wavlm_local(self) -> Path | None:
        """A local folder named by ``wavlm_sv_model`` (an absolute path, or a folder name under the project)."""
        from config import resolve_path

        source = self._wavlm_source()
        path = resolve_path(source)
        if path.is_dir():
            return path
        if source.count("/") == 1 and not source.startswith((".", "/", "~")):
            return None  # "org/name": a hub id
        return path

    def wavlm_dir(self) -> Path | None:
        """The WavLM-SV folder on disk (a local folder or the hub snapshot), or None when not downloaded."""
        local = self._wavlm_local()
        if local is not None:
            return local if _wavlm_complete(local) else None
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(self._wavlm_source(), cache_dir=self.cache_dir, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or a broken cache): "not downloaded"
            return None
        return folder if _wavlm_complete(folder) else None

    def downloaded(self, encoder: str) -> bool:
        """Whether ``encoder`` can embed without a download ("resemblyzer" and "xtts" never download)."""
        encoder = check_encoder(encoder)
        if encoder == WAVLM:
            return self.wavlm_dir() is not None
        return True

    def _missing_wavlm(self, why: str = "") -> MissingWeightsError:
        where = self._wavlm_local() or (self.cache_dir or "the Hugging Face cache")
        return MissingWeightsError(
            f"The WavLM speaker verifier ({self._wavlm_source()}) is not downloaded{why} (looked in {where}). "
            f"To get it ({WAVLM_SIZE}): open the System panel, 'Get the real models', and press "
            "'Download WavLM verifier' (needs the internet); or pick the Resemblyzer encoder, which works offline."
        )

    def download(self, encoder: str, progress: ProgressFn | None = None) -> Path:
        """Fetch the WavLM verifier into the hub cache (resumable; a complete copy is kept as is).

        Args:
            encoder: "wavlm-sv" (the others need no download).
            progress: ``progress(fraction, desc=...)``; the hub's tqdm bars also show in a gr.Progress.

        Returns:
            The model folder.

        Raises:
            InputError: an encoder that is not downloaded. MissingWeightsError: offline or the hub refused.
        """
        encoder = check_encoder(encoder)
        if encoder != WAVLM:
            raise InputError(f"The {LABELS[encoder]} needs no download.")
        folder = self.wavlm_dir()
        if folder is not None:
            return folder
        if self._wavlm_local() is not None:
            raise self._missing_wavlm(": the folder set in wavlm_sv_model lacks its files")
        if progress is not None:
            progress(0.0, desc=f"Downloading {self._wavlm_source()} ({WAVLM_SIZE})")
        try:
            from huggingface_hub import snapshot_download

            folder = Path(
                snapshot_download(
                    self._wavlm_source(),
                    cache_dir=self.cache_dir,
                    allow_patterns=["*.json", *WAVLM_WEIGHTS],
                )
            )
        except Exception as exc:  # noqa: BLE001 - offline, hub down, unknown repo: all mean "no weights"
            log.warning("WavLM-SV download failed: %s", exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self._missing_wavlm(f" and the download failed ({first})") from exc
        if not _wavlm_complete(folder):
            raise self._missing_wavlm(f": the download in {folder} is incomplete")
        if progress is not None:
            progress(1.0, desc="WavLM verifier downloaded")
        return folder

    def info(self, encoder: str, model_id: str | None = None) -> EncoderInfo:
        """What computes the embeddings of ``encoder`` (for results and reports).

        Args:
            encoder: one of ``ENCODER_IDS``.
            model_id: for "xtts", whose encoder (None = the loaded or default TTS model).

        Raises:
            InputError: unknown encoder. MissingWeightsError: WavLM not downloaded, XTTS model missing.
        """
        encoder = check_encoder(encoder)
        if encoder == RESEMBLYZER:
            weights = resemblyzer_weights()
            return EncoderInfo(
                RESEMBLYZER,
                LABELS[RESEMBLYZER],
                True,
                f"resemblyzer {installed_version('resemblyzer') or '?'}",
                str(weights),
                weights_sha256(weights) if weights.is_file() else "",
            )
        if encoder == WAVLM:
            folder = self.wavlm_dir()
            if folder is None:
                raise self._missing_wavlm()
            main = _wavlm_weights_file(folder)
            revision = folder.name if folder.parent.name == "snapshots" else "local"
            return EncoderInfo(
                WAVLM,
                LABELS[WAVLM],
                True,
                f"{self._wavlm_source()}@{revision[:12]} (transformers {installed_version('transformers') or '?'})",
                str(folder),
                weights_sha256(main) if main is not None else "",
            )
        tts = self._need_tts()
        model_id = model_id or self._xtts_model_id()
        folder = tts.model_dir(model_id)
        xtts_weights = folder / "model.pth" if folder is not None else None
        return EncoderInfo(
            XTTS,
            LABELS[XTTS],
            False,
            f"{model_id} (coqui-tts {installed_version('coqui-tts') or '?'})",
            str(xtts_weights) if xtts_weights is not None else "",
            weights_sha256(xtts_weights) if xtts_weights is not None and xtts_weights.is_file() else "",
        )

    # ------------------------------------------------------------------ embeddings

    def embed(
        self, encoder: str, audio: np.ndarray | Path | str, sr: int | None = None, model_id: str | None = None
    ) -> np.ndarray:
        """A unit-length speaker embedding of one clip.

        A file is a reference and is embedded whole (up to ``max_ref_seconds``), as each encoder's authors do;
        for "xtts" it is read the way synthesis reads references. An array (a generated clip) is embedded whole.

        Args:
            encoder: one of ``ENCODER_IDS``.
            audio: a file path, or a mono float array.
            sr: the array's sample rate (required with an array).
            model_id: for "xtts" only, whose encoder.

        Returns:
            float32 vector of unit length (256 values for Resemblyzer, 512 for WavLM and XTTS).

        Raises:
            InputError: unknown encoder, no sample rate. AudioError: unreadable, too short, silent, no speech.
            MissingWeightsError: WavLM not downloaded.
        """
        encoder = check_encoder(encoder)
        if encoder == XTTS:
            tts = self._need_tts()
            if not isinstance(audio, str | Path):
                samples = self._array(audio, sr)
                self._check_usable(samples, int(sr))  # type: ignore[arg-type]
                return _unit(tts.speaker_embedding(samples, sr=sr, model_id=model_id))
            return _unit(tts.speaker_embedding(Path(audio), model_id=model_id))
        samples = self._to_16k(audio, sr)
        if encoder == RESEMBLYZER:
            return self._embed_resemblyzer(samples, reference=isinstance(audio, str | Path))
        return self._embed_wavlm(samples)

    def similarity(self, encoder: str, a_emb: np.ndarray, b_emb: np.ndarray) -> float:
        """Cosine similarity of two embeddings of ``encoder`` (in [-1, 1]; Resemblyzer's lie in [0, 1]).

        Raises:
            InputError: unknown encoder, or embeddings of different sizes.
        """
        check_encoder(encoder)
        return cosine(a_emb, b_emb)

    def unload(self) -> bool:
        """Drop the resident encoders. Returns True when one was loaded."""
        return bool(self._resemblyzer.unload() | self._wavlm.unload())

    def status(self) -> dict[str, Any]:
        """The resident encoders, for the System panel."""
        loaded = [h.loaded for h in (self._resemblyzer, self._wavlm) if h.loaded is not None]
        return {
            "loaded_model": ", ".join(x.key for x in loaded) or None,
            "device": loaded[0].device if loaded else resolve_device(self.settings.device),
            "load_seconds": round(sum(x.load_seconds for x in loaded), 2) if loaded else None,
            "default_encoder": self.settings.sim_encoder,
        }

    # ------------------------------------------------------------------ internals

    def _need_tts(self) -> Any:
        if self.tts is None:
            raise InputError("The 'xtts' encoder needs the TTS engine; this similarity engine was made without one.")
        return self.tts

    def _xtts_model_id(self) -> str:
        loaded = getattr(getattr(self.tts, "holder", None), "loaded", None)
        return loaded.key if loaded is not None else self.tts.default_model()

    @staticmethod
    def _array(audio: Any, sr: int | None) -> np.ndarray:
        if sr is None:
            raise InputError("Speaker embedding: give the sample rate of the array (sr=...).")
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim == 2:  # (channels, n) or (n, channels): average the short axis
            samples = samples.mean(axis=int(np.argmin(samples.shape)))
        return sanitize(samples.reshape(-1), "The clip")

    def _check_usable(self, samples: np.ndarray, sr: int) -> None:
        seconds = samples.size / float(sr)
        if seconds < self.settings.min_audio_seconds:
            raise AudioError(
                f"Audio of {seconds:.2f} s is too short for a speaker embedding "
                f"(at least {self.settings.min_audio_seconds:g} s)."
            )
        if is_silent(samples):
            raise AudioError("The clip is silent: a speaker similarity of silence means nothing.")

    def _to_16k(self, audio: np.ndarray | Path | str, sr: int | None) -> np.ndarray:
        if isinstance(audio, str | Path):
            samples, sr = load_audio(audio, sr=SR, max_mb=self.settings.max_upload_mb)
            samples = samples[: int(self.settings.max_ref_seconds * SR)]  # as TTS trims references
        else:
            if sr is None:
                raise AudioError("An audio array needs its sample rate.")
            samples = self._array(audio, sr)
        self._check_usable(samples, sr)
        return resample(samples, sr, SR)

    def _load_resemblyzer(self, key: str, device: str) -> Any:
        _import_resemblyzer()
        from resemblyzer import VoiceEncoder

        return VoiceEncoder(device=device, verbose=False, weights_fpath=resemblyzer_weights())

    def embed_batch(self, encoder: str, clips: list[np.ndarray], sr: int) -> list[np.ndarray | LabError]:
        """Unit speaker embeddings of many arrays, each as ``embed(encoder, clip, sr)`` gives it.

        Resemblyzer's partial utterances of all the clips go through the encoder together (a few forward passes
        instead of one per clip); each clip's embedding is still the normed mean of its own partials. Other
        encoders embed clip by clip.

        Returns:
            One entry per clip, in order: its embedding, or the error ``embed`` would raise for it (too short,
            silent, no speech).

        Raises:
            InputError: unknown encoder, no sample rate. MissingWeightsError: weights missing.
        """
        encoder = check_encoder(encoder)
        out: list[np.ndarray | LabError] = []
        if encoder != RESEMBLYZER:
            for clip in clips:
                try:
                    out.append(self.embed(encoder, clip, sr))
                except AudioError as exc:
                    out.append(exc)
            return out
        ready: list[np.ndarray] = []
        for clip in clips:
            try:
                wav = self._resemblyzer_input(self._to_16k(clip, sr), reference=False)
            except AudioError as exc:
                out.append(exc)
                continue
            out.append(wav)
            ready.append(wav)
        embs = iter(self._resemblyzer_forward(ready))
        return [next(embs) if isinstance(o, np.ndarray) else o for o in out]

    def _resemblyzer_input(self, samples: np.ndarray, reference: bool) -> np.ndarray:
        """Resemblyzer's own preprocess_wav on 16 kHz samples (raises AudioError for too little speech)."""
        _import_resemblyzer()
        from resemblyzer.audio import normalize_volume, trim_long_silences
        from resemblyzer.hparams import audio_norm_target_dBFS

        # Resemblyzer's own preprocess_wav (its published usage, and what GE2E was trained on): raise quiet
        # audio to -30 dBFS, then cut silences longer than ~0.2 s with webrtcvad, so pauses and padding do not
        # dilute the 1.6 s partial embeddings. Clipped to full scale first: its VAD casts to int16 (wraps).
        wav = np.clip(normalize_volume(samples, audio_norm_target_dBFS, increase_only=True), -1.0, 1.0)
        trimmed = trim_long_silences(wav.astype(np.float32))
        # A generated clip in which the VAD hears no speech (noise, a broken model) is embedded untrimmed: its low
        # SIM is the honest score, while leaving it out would raise the system's mean SIM. A reference must hold
        # speech.
        wav = trimmed if reference or trimmed.size >= MIN_SPEECH_SECONDS * SR else wav.astype(np.float32)
        if wav.size < MIN_SPEECH_SECONDS * SR:
            raise AudioError(
                f"The clip holds only {wav.size / SR:.2f} s of speech once its silences are cut "
                f"(at least {MIN_SPEECH_SECONDS:g} s is needed for a speaker embedding)."
            )
        return wav

    def _embed_resemblyzer(self, samples: np.ndarray, reference: bool = True) -> np.ndarray:
        return self._resemblyzer_forward([self._resemblyzer_input(samples, reference)])[0]

    def _resemblyzer_forward(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """``VoiceEncoder.embed_utterance`` of each preprocessed wav, the partials of all of them batched."""
        if not wavs:
            return []
        import torch
        from resemblyzer import VoiceEncoder
        from resemblyzer import audio as resemblyzer_audio

        mels: list[np.ndarray] = []
        counts: list[int] = []
        for wav in wavs:  # embed_utterance's slicing and padding (rate 1.3, min coverage 0.75: its defaults)
            wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), 1.3, 0.75)
            if wav_slices[-1].stop >= len(wav):
                wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
            mel = resemblyzer_audio.wav_to_mel_spectrogram(wav)
            mels += [mel[s] for s in mel_slices]
            counts.append(len(mel_slices))
        device = resolve_device(self.settings.device)
        partials: list[np.ndarray] = []
        with self.gpu_lock:
            model = self._resemblyzer.get(RESEMBLYZER, device, self._load_resemblyzer)
            with oom_guard("the Resemblyzer speaker embedding", "Free GPU memory (System panel)."), torch.no_grad():
                for i in range(0, len(mels), RESEMBLYZER_BATCH):
                    batch = torch.from_numpy(np.array(mels[i : i + RESEMBLYZER_BATCH])).to(model.device)
                    partials.append(model(batch).cpu().numpy())
        stacked = np.concatenate(partials)
        out, start = [], 0
        for n in counts:
            raw = np.mean(stacked[start : start + n], axis=0)
            out.append(_unit(raw / np.linalg.norm(raw, 2)))
            start += n
        return out

    def _load_wavlm(self, key: str, device: str) -> tuple[Any, Any]:
        import torch
        from transformers import AutoFeatureExtractor, WavLMForXVector

        folder = Path(key)
        extractor = AutoFeatureExtractor.from_pretrained(folder)
        model = WavLMForXVector.from_pretrained(folder, dtype=torch.float32).to(device).eval()  # type: ignore[arg-type]  # transformers 5 types .to() through a decorator that mypy misreads
        return extractor, model

    def _embed_wavlm(self, samples: np.ndarray) -> np.ndarray:
        import torch

        folder = self.wavlm_dir()
        if folder is None:
            raise self._missing_wavlm()
        device = resolve_device(self.settings.device)
        with self.gpu_lock:
            extractor, model = self._wavlm.get(str(folder), device, self._load_wavlm)
            # The model card's usage: the extractor's own input processing, then the x-vector head.
            inputs = extractor(samples, sampling_rate=SR, return_tensors="pt")
            with oom_guard("the WavLM speaker embedding", "Free GPU memory (System panel)."), torch.inference_mode():
                inputs = {k: v.to(device) for k, v in inputs.items()}
                emb = model(**inputs).embeddings
        return _unit(emb.reshape(-1).float().cpu().numpy())


@functools.lru_cache(maxsize=1)
def _import_resemblyzer() -> None:
    # its imports warn about deprecated scipy / pkg_resources APIs: nothing a user can fix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import resemblyzer  # noqa: F401
        import resemblyzer.audio  # noqa: F401


def _wavlm_weights_file(folder: Path) -> Path | None:
    for name in WAVLM_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    return None


def _wavlm_complete(folder: Path) -> bool:
    return (
        folder.is_dir()
        and all((folder / name).is_file() for name in WAVLM_FILES)
        and _wavlm_weights_file(folder) is not None
    )


__all__ = [
    "ENCODER_IDS",
    "LABELS",
    "EncoderInfo",
    "SimilarityEngine",
    "check_encoder",
    "cosine",
    "resemblyzer_weights",
    "weights_sha256",
]
