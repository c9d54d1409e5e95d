"""engines.scoring.mos: DNSMOS with the real ONNX models from the speechmos wheel; UTMOS's not-available path, and its
real network (engines.scoring.utmos22) with random weights for the loading/inference plumbing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from engines.core.audio import file_sha256, load_audio, resample
from engines.core.errors import AudioError, InputError, MissingWeightsError
from engines.scoring.mos import MOS_COLUMNS, UTMOS_FILE, MOSEngine


def _settings(tmp_path: Path):
    from config import load_settings

    return load_settings(
        {"workspace": tmp_path / "ws", "device": "cpu", "metrics_cache_dir": tmp_path / "metrics"}, env={}
    )


@pytest.fixture(scope="module")
def mos(tmp_path_factory: pytest.TempPathFactory) -> MOSEngine:
    return MOSEngine(_settings(tmp_path_factory.mktemp("mos")), threading.RLock())


@pytest.fixture(scope="module")
def joe_clip(piper_say) -> tuple[np.ndarray, int]:
    path = piper_say(["Printing differs from most arts and crafts."], name="mos-joe", lead=0.1)
    return load_audio(path)


def _noisy(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(audio.astype(np.float64) ** 2))
    noise = rng.standard_normal(audio.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


def test_clean_ljspeech_beats_noisy(mos: MOSEngine, shared_data: Path) -> None:
    """White noise at 5 dB SNR. Measured OVRL: clean 2.8-3.3, noisy 1.7-1.8."""
    clean, noisy = [], []
    for i in (1, 2, 3):
        audio, sr = load_audio(shared_data / f"ljspeech/wavs/LJ001-000{i}.wav")
        clean.append(mos.dnsmos(audio, sr)["dnsmos_ovrl"])
        noisy.append(mos.dnsmos(_noisy(audio, 5.0, seed=i), sr)["dnsmos_ovrl"])
    print("clean", np.round(clean, 2), "noisy", np.round(noisy, 2))
    assert all(c > n + 0.5 for c, n in zip(clean, noisy))
    assert np.mean(clean) - np.mean(noisy) > 0.8


def test_clean_piper_beats_noisy(mos: MOSEngine, joe_clip) -> None:
    audio, sr = joe_clip
    clean = mos.dnsmos(audio, sr)
    noisy = mos.dnsmos(_noisy(audio, 5.0), sr)
    print("piper clean", clean, "noisy", noisy)
    assert set(clean) == set(MOS_COLUMNS[:4])
    assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"] + 0.5
    assert clean["dnsmos_bak"] > noisy["dnsmos_bak"]


def test_short_clips_and_sample_rates(mos: MOSEngine, joe_clip) -> None:
    audio, sr = joe_clip  # 22.05 kHz
    base = mos.dnsmos(resample(audio, sr, 16000), 16000)["dnsmos_ovrl"]
    for rate in (22050, 24000, 44100):
        assert abs(mos.dnsmos(resample(audio, sr, rate), rate)["dnsmos_ovrl"] - base) < 0.15, rate
    for seconds in (0.6, 1.0):  # tiled to >= 9.01 s by DNSMOS
        scores = mos.dnsmos(audio[int(0.1 * sr) : int((0.1 + seconds) * sr)], sr)
        assert all(1.0 <= v <= 5.0 for v in scores.values()), scores
    with pytest.raises(AudioError, match="too short"):
        mos.dnsmos(audio[: int(0.3 * sr)], sr)
    with pytest.raises(InputError, match="sample rate"):
        mos.dnsmos(audio, 0)


def test_over_full_scale_is_scaled_not_refused(mos: MOSEngine, joe_clip) -> None:
    audio, sr = joe_clip
    loud = audio / float(np.max(np.abs(audio))) * 1.5  # float TTS output can overshoot
    scaled = loud / 1.5
    assert mos.dnsmos(loud, sr) == pytest.approx(mos.dnsmos(scaled, sr), abs=1e-3)


def test_silence_is_scored(mos: MOSEngine) -> None:
    scores = mos.dnsmos(np.zeros(16000, np.float32), 16000)
    assert all(np.isfinite(v) for v in scores.values())


def test_concurrent_scores_agree(mos: MOSEngine, joe_clip) -> None:
    audio, sr = joe_clip
    serial = mos.dnsmos(audio, sr)
    out: list[dict] = []
    threads = [threading.Thread(target=lambda: out.append(mos.dnsmos(audio, sr))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [serial, serial]


def test_dnsmos_info_and_ids(mos: MOSEngine) -> None:
    info = mos.info("dnsmos")
    assert info.version.startswith("speechmos ") and "onnxruntime" in info.version
    assert info.sha256 == file_sha256(info.weights.split("; ")[0])
    assert mos.available("dnsmos") is None
    with pytest.raises(InputError, match="dnsmos, utmos"):
        mos.info("pesq")
    with pytest.raises(InputError, match="needs no download"):
        mos.download("dnsmos")


def test_utmos_offline_is_not_available(mos: MOSEngine) -> None:
    reason = mos.available("utmos")
    assert reason is not None and "not downloaded" in reason and "System panel" in reason
    assert ("utmos", mos.predictors()[1][1], False) in mos.predictors()
    assert not mos.downloaded("utmos")
    with pytest.raises(MissingWeightsError, match="Download UTMOS"):
        mos.utmos(np.ones(16000, np.float32) * 0.1, 16000)
    with pytest.raises(MissingWeightsError):
        mos.info("utmos")


def test_utmos_network_loads_and_scores(tmp_path: Path, joe_clip) -> None:
    """The real UTMOS22 architecture with random weights, saved where the download goes: plumbing only."""
    import torch

    from engines.scoring.utmos22 import UTMOS22Strong

    torch.manual_seed(0)
    model = UTMOS22Strong()
    torch.nn.init.normal_(model.domain_emb)
    torch.nn.init.normal_(model.judge_emb)
    mos = MOSEngine(_settings(tmp_path), threading.RLock())
    path = mos.utmos_path()
    path.parent.mkdir(parents=True)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, path)  # half: a smaller temp file
    assert mos.available("utmos") is None
    audio, sr = joe_clip
    score = mos.utmos(audio, sr)
    assert np.isfinite(score)
    assert mos.utmos(audio, sr) == score  # eval mode: deterministic
    assert mos.utmos(resample(audio, sr, 16000), 16000) == pytest.approx(score, abs=0.05)
    info = mos.info("utmos")
    assert info.sha256 == file_sha256(path) and UTMOS_FILE in info.version
    assert mos.unload()


def test_utmos_foreign_file_is_refused(tmp_path: Path) -> None:
    import torch

    mos = MOSEngine(_settings(tmp_path), threading.RLock())
    mos.utmos_path().parent.mkdir(parents=True)
    torch.save({"weight": torch.zeros(2)}, mos.utmos_path())
    with pytest.raises(MissingWeightsError, match="not a UTMOS22 strong checkpoint"):
        mos.utmos(np.ones(16000, np.float32) * 0.1, 16000)


def test_batched_p835_equals_dnsmos_clip_by_clip(mos: MOSEngine, shared_data: Path) -> None:
    # the dataset screening's DNSMOS: all clips' 9 s windows in one model call, P.808 left out; clips of 2-10 s
    # (one window, tiled) and a 14 s one (several windows) score as ``dnsmos`` scores them one by one
    clips = [load_audio(shared_data / f"ljspeech/wavs/LJ001-000{i}.wav")[0] for i in (1, 2, 3)]
    clips.append(np.concatenate(clips[:2]))
    clips.append(np.zeros(100, np.float32))
    batched = mos.dnsmos_p835(clips, 22050)
    for clip, got in zip(clips[:4], batched[:4], strict=True):
        one = mos.dnsmos(clip, 22050)
        assert set(got) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
        for k, v in got.items():
            assert v == one[k], k
    assert isinstance(batched[4], AudioError)
