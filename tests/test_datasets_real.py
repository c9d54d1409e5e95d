"""Dataset builder with the real models: Piper speaks known text with known pauses, Whisper tiny.en cuts it.

Piper's recordings put exact digital zeros between sentences (``piper_say``), so every pause position
is known to the sample: a clip boundary is checked against where the speech really is, a clip's text
against the sentences its audio holds. LJSpeech's 8 transcribed clips check supplied transcripts and
validation against human text. Numbers measured here are tiny.en's: a larger Whisper does better.
"""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from engines.core.errors import InputError
from engines.datasets import CER_THRESHOLD, DatasetEngine, DatasetOptions
from engines.scoring.metrics import normalize, text_cer

pytestmark = pytest.mark.real

STORY_A = [
    "The lighthouse stood at the end of a narrow spit of rock, far from the nearest village.",
    "Every evening the keeper climbed the winding stairs to light the great lamp.",
    "He had done this for nearly twenty years, and he had never missed a single night.",
    "In the winter the storms came in from the west and shook the windows of the tower.",
    "Ships passed the point in the dark, guided by the steady beam that swept across the water.",
    "The keeper kept a journal in which he wrote down the weather and the ships he saw.",
    "Some nights there was nothing to record but wind and rain.",
    "On other nights he watched the lights of fishing boats drifting slowly toward the harbour.",
    "His only companion was an old grey cat that slept beside the stove.",
    "Once a month a small boat brought him flour, oil, and letters from his sister.",
    "She wrote about her garden, her children, and the changing prices at the market.",
    "He read each letter twice and kept them all in a wooden box under his bed.",
    "One autumn a young surveyor arrived to measure the coastline for a new map.",
    "He stayed for a week and asked a great many questions about the tides.",
    "When the surveyor left, the tower seemed quieter than it had ever been before.",
]
STORY_B = [
    "The river begins as a small spring high in the mountains, hidden among mossy stones.",
    "At first it is no wider than a man's hand, and it trickles quietly between the roots of the pines.",
    "Other streams join it as it runs downhill, and soon it becomes loud and fast.",
    "In the narrow valleys it tumbles over boulders and cuts deep channels into the rock.",
    "Trout live in the cold pools below the waterfalls, where the water is clear and full of air.",
    "Further down, the valley widens and the river slows as it reaches the open plain.",
    "Here farmers have built small weirs to lead the water into their fields.",
    "Willows grow along the banks, and their roots hold the soil together during floods.",
    "Herons stand motionless in the shallows, waiting for a fish to swim within reach.",
    "In the summer children swim at the bend below the old stone bridge.",
    "The bridge was built by hand more than two hundred years ago, without any cement.",
    "Each stone was cut to fit the ones around it, and the arch has never needed repair.",
    "Below the bridge the river passes a mill that once ground grain for the whole district.",
    "The mill wheel no longer turns, but the building has been turned into a small museum.",
]
PAUSES = [0.3, 0.8, 0.5, 0.4, 0.6, 0.35, 0.7, 0.45]  # seconds between sentences, as a reader pauses
SILENT_DB = -45.0  # a 10 ms frame under this is silence (Piper speaks at about -20 dBFS RMS)
QUIET = [
    "Bread is one of the oldest prepared foods.",
    "The simplest loaf needs only flour, water, salt, and a little yeast.",
    "A good baker learns to judge the dough by touch rather than by the clock.",
]


def quiet() -> tuple[list[str], callable]:
    lines: list[str] = []
    return lines, lines.append


def no_progress(*_a, **_k) -> None:
    return None


def levels_db(path: Path) -> tuple[np.ndarray, float]:
    """10 ms frame levels (dBFS) of a recording, and the frame length."""
    x, sr = sf.read(str(path), dtype="float32")
    hop = sr // 100
    n = len(x) // hop
    return 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12), hop / sr


def sentence_spans(path: Path) -> list[tuple[float, float]]:
    """Where each sentence's voice is: between the inserted zero runs, Piper's own quiet edges trimmed."""
    x, sr = sf.read(str(path), dtype="float32")
    z = np.diff(np.concatenate([[0], (x == 0).astype(int), [0]]))
    runs = [(a / sr, b / sr) for a, b in zip(np.where(z == 1)[0], np.where(z == -1)[0]) if b - a >= 0.25 * sr]
    levels, step = levels_db(path)
    spans = []
    for (_, s0), (s1, _) in zip(runs, runs[1:]):
        loud = np.where(levels[int(s0 / step) : int(s1 / step)] > SILENT_DB)[0]
        spans.append((s0 + loud[0] * step, s0 + (loud[-1] + 1) * step))
    return spans


def in_silence(t: float, levels: np.ndarray, step: float, margin: float = 0.02) -> bool:
    """The audio within ``margin`` seconds of ``t`` is a pause (no frame above SILENT_DB)."""
    window = levels[max(0, int((t - margin) / step)) : int((t + margin) / step) + 1]
    return bool(window.size == 0 or window.max() <= SILENT_DB)


def expected_text(
    text: str, start: float, end: float, spans: list[tuple[float, float]], story: list[str]
) -> tuple[str, float]:
    """The known text a clip [start, end] holds, and ``text``'s CER against it.

    Whole sentences inside the clip count whole; a sentence the clip starts or ends inside must have been
    cut at one of its own pauses, which Piper makes at commas: the comma split that fits best is taken.
    ("", 1.0) when the clip holds no sentence, or cuts one that has no comma.
    """
    choices: list[list[str]] = []
    for (a, b), sentence in zip(spans, story):
        if b <= start or a >= end:
            continue
        if start <= a and b <= end:
            choices.append([sentence])
            continue
        parts = re.split(r"(?<=,)\s+", sentence)
        cuts = range(1, len(parts))
        choices.append([" ".join(parts[k:]) for k in cuts] if a < start else [" ".join(parts[:k]) for k in cuts])
    if not choices or not all(choices):
        return "", 1.0
    candidates = [" ".join(c) for c in itertools.product(*choices)]
    return min(((c, text_cer(c, text, "en")) for c in candidates), key=lambda r: r[1])


def edge_deleted(reference: str, hypothesis: str) -> bool:
    """True when the alignment deletes the reference's first or last word (a word cut off)."""
    ref, hyp = normalize(reference, "en"), normalize(hypothesis, "en")
    chunks = jiwer.process_words(ref, hyp).alignments[0]
    return chunks[0].type == "delete" or chunks[-1].type == "delete"


def corrupt(text: str, target: float = 0.19) -> str:
    """Reverse words from the second on until the text is ~``target`` CER away from the original."""
    words = text.split()
    for i in range(1, len(words)):
        words[i] = words[i][::-1] if len(words[i]) > 3 else words[i]
        out = " ".join(words)
        if text_cer(out, text, "en") >= target - 0.01:
            return out
    raise AssertionError(f"cannot corrupt {text!r} to CER {target}")


@pytest.fixture(scope="module")
def real_ds(tmp_path_factory, tiny_models) -> DatasetEngine:
    """A dataset engine on a fresh workspace (module-wide, so one build serves several checks)."""
    from config import load_settings
    from engines import Engines

    tmp = tmp_path_factory.mktemp("real-datasets")
    (tmp / "workspace" / "tiny-models").mkdir(parents=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        (tmp / "workspace" / "tiny-models" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    settings = load_settings(
        {"workspace": tmp / "workspace", "datasets_dir": tmp / "datasets", "tiny_models": True, "device": "cpu"},
        env={},
    )
    return Engines.create(settings).datasets


@pytest.fixture(scope="module")
def recordings(piper_say) -> dict[str, tuple[Path, list[str]]]:
    """Two ~65 s readings with 0.3-0.8 s pauses between sentences."""
    return {
        name: (piper_say(story, pauses=PAUSES, name=name), story)
        for name, story in (("lighthouse", STORY_A), ("river", STORY_B))
    }


@pytest.fixture(scope="module")
def piper_dataset(real_ds, recordings, real_whisper):
    files = [path for path, _ in recordings.values()]
    report = real_ds.build(
        "piper", files, "en", options=DatasetOptions(model_id=real_whisper), progress=no_progress, log_fn=quiet()[1]
    )
    return report


def test_clips_are_cut_in_real_pauses_and_say_their_sentences(real_ds, recordings, piper_dataset) -> None:
    """Every boundary in a pause, every clip within limits, its text its own words, 90 %+ of the speech kept."""
    options = DatasetOptions()
    clips = real_ds.info("piper")["clips"]
    assert piper_dataset.clips == len(clips) >= 10 and not piper_dataset.dropped
    speech = kept = 0.0
    in_speech, off_sentence_pause, worst = [], [], 0.0
    for path, story in recordings.values():
        spans = sentence_spans(path)
        levels, step = levels_db(path)
        assert len(spans) == len(story)
        mine = sorted((c for c in clips.values() if c["source"] == path.name), key=lambda c: c["start"])
        for c in mine:
            assert options.min_clip <= c["duration"] <= options.max_clip, c
            for t in (c["start"], c["end"]):
                if not in_silence(t, levels, step):
                    in_speech.append((c["clip"], t))
                elif any(a < t < b for a, b in spans):  # a pause inside a sentence (Piper pauses at commas)
                    off_sentence_pause.append((c["clip"], t))
            expected, cer = expected_text(c["text"], c["start"], c["end"], spans, story)
            worst = max(worst, cer)
            assert expected and cer <= 0.10, (c["clip"], cer, expected, c["text"])
            assert not edge_deleted(expected, c["text"]), (c["clip"], expected, c["text"])
        speech += sum(b - a for a, b in spans)
        kept += sum(max(0.0, min(b, c["end"]) - max(a, c["start"])) for a, b in spans for c in mine)
    boundaries = 2 * len(clips)
    assert in_speech == [], f"{len(in_speech)} of {boundaries} clip boundaries inside speech: {in_speech}"
    assert len(off_sentence_pause) <= 0.1 * boundaries, off_sentence_pause  # sentence ends are preferred
    assert kept / speech >= 0.90
    print(
        f"\n{len(clips)} clips; {boundaries} boundaries: 0 in speech, {len(off_sentence_pause)} at a pause inside a "
        f"sentence; coverage {kept / speech:.3f}; worst CER against the known text {worst:.3f}"
    )


def test_validation_flags_the_corrupted_clip_only(real_ds, piper_dataset) -> None:
    rows = real_ds.load_table("piper")
    victim = rows[len(rows) // 2]
    original = victim.text
    victim.text = corrupt(original)
    assert 0.17 <= text_cer(victim.text, original, "en") <= 0.22
    real_ds.save_table("piper", rows)
    report = real_ds.validate("piper", log_fn=quiet()[1])
    assert report.threshold == CER_THRESHOLD and report.checked == len(rows)
    assert [m.clip for m in report.mismatches] == [victim.clip]
    clips = real_ds.info("piper")["clips"]
    for clip, entry in clips.items():
        if clip != victim.clip:  # re-transcribing a clip gives back its text
            assert entry["cer"] <= 0.10, (clip, entry["text"], entry["asr_text"])
    assert text_cer(original, clips[victim.clip]["asr_text"], "en") <= 0.10


def test_ljspeech_metadata_verbatim_one_eval_clip_and_validation(real_ds, shared_data, real_whisper) -> None:
    """LJSpeech's metadata.csv (header, transcription column, 4 pseudo-speakers of 2 clips)."""
    root = shared_data / "ljspeech"
    with open(root / "metadata.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="|", quoting=csv.QUOTE_NONE))
    wavs = [root / r["audio_file"] for r in rows]
    lines, log = quiet()
    report = real_ds.build(
        "lj8",
        wavs,
        "en",
        transcripts=root / "metadata.csv",
        options=DatasetOptions(model_id=real_whisper),
        progress=no_progress,
        log_fn=log,
    )
    table = {r.clip: r for r in real_ds.load_table("lj8")}
    for r in rows:  # the spoken-form column, character for character
        assert table[Path(r["audio_file"]).name].text == r["transcription"]
    assert report.clips == 8 and report.eval_clips == 1  # the share, not one per pseudo-speaker
    assert any("speaker column" in n for n in report.notices)

    victim = "LJ001-0005.wav"
    edited = [
        {"clip": c, "text": corrupt(r.text) if c == victim else r.text, "speaker": r.speaker, "split": r.split}
        for c, r in table.items()
    ]
    real_ds.save_table("lj8", edited)
    result = real_ds.validate("lj8", log_fn=log)
    clips = real_ds.info("lj8")["clips"]
    assert [m.clip for m in result.mismatches] == [victim], {c: e["cer"] for c, e in clips.items()}
    assert 0.15 <= clips[victim]["cer"] <= 0.25  # the real mismatch, about 0.19
    assert clips["LJ001-0007.wav"]["cer"] <= 0.05  # "fourteen fifty-five" and "1455" agree
    print("\nLJSpeech validation CER:", {c: e["cer"] for c, e in clips.items()})


def test_quiet_recording_is_speech_not_silence(real_ds, piper_say, real_whisper, tmp_path) -> None:
    """A reading at -55 dBFS RMS (under the old -50 dBFS floor) is kept, with its words."""
    path = piper_say(QUIET, pauses=[0.5], name="quiet-src")
    audio, sr = sf.read(str(path), dtype="float32")
    rms = 20 * np.log10(np.sqrt(np.mean(audio**2)))
    quiet_path = tmp_path / "quiet.wav"
    sf.write(str(quiet_path), audio * 10 ** ((-55.0 - rms) / 20), sr, subtype="PCM_16")
    report = real_ds.build(
        "quiet",
        [quiet_path],
        "en",
        options=DatasetOptions(model_id=real_whisper),
        progress=no_progress,
        log_fn=quiet()[1],
    )
    assert report.clips >= 1 and not report.dropped
    text = " ".join(r.text for r in real_ds.load_table("quiet"))
    assert text_cer(" ".join(QUIET), text, "en") <= 0.10, text


def test_english_only_whisper_refuses_german_before_anything_is_made(real_ds, recordings, real_whisper, tmp_path):
    path, _ = recordings["river"]
    with pytest.raises(InputError, match="English"):
        real_ds.build(
            "deutsch",
            [path],
            "de",
            options=DatasetOptions(model_id=real_whisper),
            progress=no_progress,
            log_fn=quiet()[1],
        )
    assert not real_ds.dataset_dir("deutsch").exists()
    assert "deutsch" not in [d.name for d in real_ds.list_datasets()]
    # a German dataset from a transcripts file needs no Whisper; validating it with tiny.en is refused
    listing = tmp_path / "list.txt"
    listing.write_text(f"{path.name}|Der Fluss beginnt als kleine Quelle.\n", encoding="utf-8")
    real_ds.build("deutsch", [path], "de", transcripts=listing, progress=no_progress, log_fn=quiet()[1])
    before = real_ds.info("deutsch")
    with pytest.raises(InputError, match="English"):
        real_ds.validate("deutsch", model_id=real_whisper, log_fn=quiet()[1])
    assert real_ds.info("deutsch") == before
