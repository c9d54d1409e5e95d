"""engines.scoring.sim: speaker similarity from Resemblyzer (real GE2E weights from its wheel), WavLM-SV
(a tiny random model of the real architecture: plumbing only) and XTTS's own encoder (tiny: plumbing only)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest

from engines.core.audio import file_sha256, load_audio, resample
from engines.core.errors import AudioError, InputError, MissingWeightsError
from engines.scoring.sim import SimilarityEngine, cosine

SENTENCES = [
    "Printing differs from most arts and crafts.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
]


def _settings(tmp_path: Path, **extra):
    from config import load_settings

    return load_settings(
        {"workspace": tmp_path / "ws", "device": "cpu", "metrics_cache_dir": tmp_path / "metrics", **extra}, env={}
    )


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimilarityEngine:
    return SimilarityEngine(_settings(tmp_path_factory.mktemp("sim")), threading.RLock())


@pytest.fixture(scope="module")
def joe(piper_voice):
    """Piper's joe voice saying one sentence -> (audio, sr); deterministic (no noise)."""
    from piper.config import SynthesisConfig

    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def _say(text: str) -> tuple[np.ndarray, int]:
        audio = np.concatenate([c.audio_float_array for c in piper_voice.synthesize(text, syn_config=fixed)])
        return audio.astype(np.float32), piper_voice.config.sample_rate

    return _say


def _margin(sim: SimilarityEngine, embs: dict[str, np.ndarray], speaker) -> tuple[list[float], list[float]]:
    same, cross = [], []
    for a, b in itertools.combinations(embs, 2):
        (same if speaker(a) == speaker(b) else cross).append(sim.similarity("resemblyzer", embs[a], embs[b]))
    print("same", np.round(same, 3), "cross", np.round(cross, 3))
    return same, cross


def test_resemblyzer_separates_ljspeech_and_jfk(sim: SimilarityEngine, shared_data: Path) -> None:
    """Measured: LJ-LJ 0.79-0.96, JFK half vs half 0.82; LJ vs JFK 0.45-0.53."""
    embs = {f"lj{i}": sim.embed("resemblyzer", shared_data / f"ljspeech/wavs/LJ001-000{i}.wav") for i in (1, 2, 3)}
    jfk, sr = load_audio(shared_data / "whisper" / "jfk.flac")
    half = len(jfk) // 2
    embs["jfk1"] = sim.embed("resemblyzer", jfk[:half], sr)
    embs["jfk2"] = sim.embed("resemblyzer", jfk[half:], sr)
    same, cross = _margin(sim, embs, lambda name: name[:2])
    assert min(same) > max(cross) + 0.15
    assert np.mean(same) - np.mean(cross) > 0.25


def test_resemblyzer_separates_piper_and_espeak(sim: SimilarityEngine, joe, speak) -> None:
    """Two synthetic voices, no ../shared needed. Measured: joe-joe 0.90, espeak-espeak 0.86, cross 0.45-0.50."""
    embs = {}
    for i, text in enumerate(SENTENCES):
        embs[f"joe{i}"] = sim.embed("resemblyzer", *joe(text))
        embs[f"esp{i}"] = sim.embed("resemblyzer", speak(text, "en", name=f"sim-espeak{i}"))  # a file
    same, cross = _margin(sim, embs, lambda name: name[:3])
    assert min(same) > max(cross) + 0.15


def test_embedding_is_unit_and_rate_independent(sim: SimilarityEngine, joe, tmp_path: Path) -> None:
    audio, sr = joe(SENTENCES[0])
    base = sim.embed("resemblyzer", audio, sr)
    assert base.dtype == np.float32 and base.shape == (256,)
    assert abs(float(np.linalg.norm(base)) - 1.0) < 1e-5
    for rate in (16000, 24000, 44100):
        other = sim.embed("resemblyzer", resample(audio, sr, rate), rate)
        assert sim.similarity("resemblyzer", base, other) > 0.98, rate
    # the same clip as a file and as an array: one embedding
    import soundfile as sf

    path = tmp_path / "joe.wav"
    sf.write(path, audio, sr, subtype="FLOAT")
    assert sim.similarity("resemblyzer", base, sim.embed("resemblyzer", path)) > 0.999


def test_short_silent_and_bad_inputs_are_refused(sim: SimilarityEngine, joe) -> None:
    audio, sr = joe(SENTENCES[0])
    with pytest.raises(AudioError, match="too short"):
        sim.embed("resemblyzer", audio[: int(0.3 * sr)], sr)
    with pytest.raises(AudioError, match="silent"):
        sim.embed("resemblyzer", np.zeros(2 * sr, np.float32), sr)
    with pytest.raises(InputError, match="sample rate"):
        sim.embed("resemblyzer", audio)
    with pytest.raises(InputError, match="Unknown speaker-similarity encoder 'ecapa'"):
        sim.embed("ecapa", audio, sr)
    with pytest.raises(InputError, match="resemblyzer, wavlm-sv, xtts"):
        sim.info("ecapa")
    with pytest.raises(InputError, match="different encoders"):
        sim.similarity("resemblyzer", np.ones(256), np.ones(512))
    with pytest.raises(AudioError, match="not found"):
        sim.embed("resemblyzer", Path("/nonexistent/clip.wav"))


def test_resemblyzer_info(sim: SimilarityEngine) -> None:
    info = sim.info("resemblyzer")
    assert info.independent and info.id == "resemblyzer"
    assert info.version.startswith("resemblyzer 0.")
    assert info.sha256 == file_sha256(info.weights)
    assert info.as_dict()["sha256"] == info.sha256


def test_concurrent_embeds_agree(sim: SimilarityEngine, joe) -> None:
    audio, sr = joe(SENTENCES[1])
    serial = sim.embed("resemblyzer", audio, sr)
    out: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: out.append(sim.embed("resemblyzer", audio, sr))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and all(np.allclose(o, serial, atol=1e-6) for o in out)


# ----- wavlm-sv -----


def test_wavlm_not_downloaded_names_the_system_panel(tmp_path: Path) -> None:
    sim = SimilarityEngine(_settings(tmp_path), threading.RLock())
    assert not sim.downloaded("wavlm-sv")
    assert ("wavlm-sv", sim.encoders()[1][1], False) in sim.encoders()
    with pytest.raises(MissingWeightsError, match="System panel"):
        sim.info("wavlm-sv")
    with pytest.raises(MissingWeightsError, match="Download WavLM verifier"):
        sim.embed("wavlm-sv", np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, 16000)
    with pytest.raises(InputError, match="needs no download"):
        sim.download("resemblyzer")


def _tiny_wavlm(folder: Path) -> Path:
    """A random WavLMForXVector of the real architecture (small widths), saved as a model folder."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32, 32, 32, 32, 32),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(32, 32, 32, 32, 64),
        xvector_output_dim=24,
    )
    WavLMForXVector(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


def test_wavlm_local_folder_loads_and_embeds(tmp_path: Path, joe) -> None:
    folder = _tiny_wavlm(tmp_path / "wavlm")
    sim = SimilarityEngine(_settings(tmp_path, wavlm_sv_model=str(folder)), threading.RLock())
    assert sim.downloaded("wavlm-sv")
    info = sim.info("wavlm-sv")
    assert info.independent and info.weights == str(folder)
    assert info.sha256 == file_sha256(folder / "model.safetensors")
    audio, sr = joe(SENTENCES[0])
    emb = sim.embed("wavlm-sv", audio, sr)
    assert emb.shape == (24,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-5
    assert np.allclose(emb, sim.embed("wavlm-sv", audio, sr), atol=1e-6)  # eval mode: deterministic
    other = sim.embed("wavlm-sv", *joe(SENTENCES[1]))
    assert cosine(emb, other) < 0.99999  # the input reaches the output
    assert sim.status()["loaded_model"] == str(folder)
    assert sim.unload() and sim.status()["loaded_model"] is None


def test_wavlm_folder_without_weights_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    sim = SimilarityEngine(_settings(tmp_path, wavlm_sv_model=str(folder)), threading.RLock())
    assert not sim.downloaded("wavlm-sv")
    with pytest.raises(MissingWeightsError, match="lacks its files"):
        sim.download("wavlm-sv")


# ----- xtts (tiny random model: plumbing only, its numbers mean nothing) -----


def test_xtts_self_similarity_plumbing(engines, joe) -> None:
    sim = engines.sim
    assert ("xtts", "XTTS speaker encoder (self-similarity)", True) in sim.encoders()
    audio, sr = joe(SENTENCES[0])
    emb = sim.embed("xtts", audio, sr)
    assert emb.shape == (512,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-5
    info = sim.info("xtts")
    assert not info.independent and "self-similarity" in info.name
    assert info.sha256 == file_sha256(info.weights) and info.weights.endswith("model.pth")
    with pytest.raises(AudioError, match="silent"):
        sim.embed("xtts", np.zeros(sr, np.float32), sr)


def test_batched_resemblyzer_gives_each_clips_own_embedding(sim: SimilarityEngine, shared_data: Path) -> None:
    # the dataset screening embeds a file's clips together: the same vector as one call per clip, and a clip
    # too short to embed gives embed's error in its place without failing the others
    clips = [load_audio(shared_data / f"ljspeech/wavs/LJ001-000{i}.wav") for i in (1, 2, 3)]
    sr = clips[0][1]
    audio = [a for a, _ in clips] + [clips[0][0][: int(0.2 * sr)]]
    batched = sim.embed_batch("resemblyzer", audio, sr)
    for a, b in zip(audio[:3], batched[:3], strict=True):
        assert isinstance(b, np.ndarray) and np.allclose(sim.embed("resemblyzer", a, sr), b, atol=1e-5)
    assert isinstance(batched[3], AudioError) and "too short" in str(batched[3])
