"""Who speaks and how clean: per-clip speaker similarity to the target, DNSMOS, speaking rate, language,
and the keep / flag / drop decision that the build and the review share.

Scores come from independent models (``engines.scoring``): Resemblyzer's GE2E encoder for the speaker (never
XTTS's own encoder, which the fine-tune is trained to match) and DNSMOS P.835 for the noise. Embeddings are
computed once per source file (kept in its manifest); the decisions are cheap and made again from the stored
scores whenever thresholds change, so every automatic drop is explained (reason and score) and reversible.

The target speaker: by default the dominant voice of each speaker name (the cluster holding the most seconds);
or the voice of the user's reference clips; or, for a multi-speaker dataset, every cluster becomes a speaker of
its own. Apart from the ``Scorer`` (which runs the models) these are pure functions over arrays and dicts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engines.asr.options import whisper_languages
from engines.core.errors import LabError

log = logging.getLogger(__name__)

# Measured with Resemblyzer on two real voices (Piper en_US-joe sentences, 12 LJSpeech clips; /tmp numbers in the
# h-data report): whole clips of 1.5 s and more score 0.88-0.98 against their own speaker's centroid, 0.44-0.55
# against the other's. 0.72 sits with ~0.16 to spare on each side; noise pulls a target clip's score down (white
# noise at 20 dB SNR: 0.69-0.91), which is why quality drops and speaker drops both say their score.
SIM_THRESHOLD = 0.72
# Pieces of 1.2 s: same speaker >= 0.75, the other <= 0.56; of 2 s: >= 0.79 / <= 0.55. Halves and adjacent spans
# (1 s and more) are judged at 0.66, between the two.
HALF_THRESHOLD = 0.66
HALF_MIN_SECONDS = 3.0  # a clip with less speech is not split in halves (halves under 1.5 s are too noisy)
CHANGE_THRESHOLD = 0.66  # adjacent stretches of speech less alike than this are a turn change: a clip ends there
CHANGE_MIN_SECONDS = 1.0  # shorter spans give embeddings too noisy to call a change on
# DNSMOS P.835 on clips of 3.5 s and more (h-data measurement, 2026-12: 29 LJSpeech clips, 5 Piper en_US-joe
# sentences, 7 LJSpeech + 5 Piper with white noise at 10/15/20 dB SNR and the real test's music bed at 10/15 dB):
#                     BAK          OVRL
#   LJSpeech clean    3.48-4.16    3.07-3.47
#   Piper clean       4.18-4.22    3.29-3.39
#   white 20 dB       2.35-2.83    2.30-2.67   (white 15 / 10 dB lower still: BAK <= 2.71 / 2.34)
#   music 10 dB       2.19-2.75    2.21-2.61
#   music 15 dB       2.49-3.40    2.42-3.01   (11 of 12 under 3.3; the top overlaps clean speech's 3.48 by 0.08)
# BAK 3.3 keeps every clean clip with 0.18 to spare and drops white noise up to 20 dB and music at 10 dB with
# 0.47 / 0.55 to spare. OVRL adds nothing BAK does not catch here, and robotic clean speech (espeak-ng) scores
# OVRL 2.35-2.95: it stays a floor for broken audio.
MIN_BAK = 3.3
MIN_SIG = 2.0  # speech distortion: clean speech 3.46-3.71 (noise and music leave it at 3.3-3.65: BAK is the judge)
MIN_OVRL = 2.0
# DNSMOS tiles a short clip to its 9 s window, which pulls clean speech down (LJSpeech at 1.8-2.6 s: BAK 3.05-3.74,
# OVRL 2.72-3.11; clean espeak-ng at 2.3-3.3 s: BAK 2.88-3.23, at 3.8-4.0 s: 3.61-3.91): under 3.5 s a failed
# DNSMOS threshold is a flag, never a drop
DNSMOS_MIN_SECONDS = 3.5
CPS_RATIO = 1.8  # characters per second outside [median / 1.8, median x 1.8]: text and audio disagree
CPS_MIN_CLIPS = 5  # fewer clips make no median to judge by
MIN_CLUSTER_SECONDS = 10.0  # multi-speaker mode: a cluster with less speech is not made a speaker
# "dominant" mode: a main voice holding less speech than this is no evidence of who the target is (two clips of
# one speaker folder, each its own "voice", would make dropping one a coin toss): its speaker calls are flags
MIN_TARGET_SECONDS = 10.0

# Torch intra-op threads while the GE2E encoder runs: its 3-layer 256-unit LSTM over 1.6 s partials is too small to
# gain from more, and more threads on a busy CPU cost dearly (measured under load: a 9.6 s clip took 17 s with
# 2 threads, 2.2 s with 1). The previous count is restored after each call.
ENCODER_THREADS = 1
_threads_lock = threading.Lock()

TARGETS = ("dominant", "reference", "all")
QUALITY_ACTIONS = ("drop", "flag")
OTHER_SPEAKER = "other speaker"
MIXED = "speaker change inside"
UNSURE = "speaker unclear"
# decision kinds a clip's drop reason starts with (review's "restore" and "apply thresholds" read them)
SPEAKER_REASONS = (OTHER_SPEAKER, MIXED)
QUALITY_REASONS = ("noisy or music", "noisy or distorted", "distorted", "speaking rate", "language")


class Cleanup(Protocol):
    """An audio clean-up step run on each source before it is cut (denoise, music separation).

    ``cleanup(audio, sr) -> audio``: mono float32 in, the same rate and length out. ``name`` goes into the
    settings key (a different clean-up re-does the file) and into the report.
    """

    name: str

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Thresholds:
    """The numbers a decision is made with (recorded in dataset.json's settings)."""

    min_similarity: float = SIM_THRESHOLD
    min_bak: float = MIN_BAK
    min_sig: float = MIN_SIG
    min_ovrl: float = MIN_OVRL
    cps_ratio: float = CPS_RATIO
    dnsmos_min_seconds: float = DNSMOS_MIN_SECONDS
    quality_action: str = "drop"  # "drop" or "flag" clips under the quality thresholds

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Thresholds:
        """From an options dict (dataset.json's settings), defaults for what it lacks."""
        names = cls.__dataclass_fields__
        return cls(**{k: settings[k] for k in names if k in settings and settings[k] is not None})


def unit(vector: Iterable[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(list(vector) if not isinstance(vector, np.ndarray) else vector, dtype=np.float64).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


@contextmanager
def encoder_threads(n: int = ENCODER_THREADS) -> Iterator[None]:
    """Torch's CPU threads capped at ``n`` for the block (one block at a time), then restored."""
    try:
        import torch
    except ImportError:  # no torch, no Resemblyzer either: the encoder call reports that
        yield
        return
    with _threads_lock:
        before = torch.get_num_threads()
        if before > n:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)


class Scorer:
    """Runs the scoring models on clips: a speaker embedding (Resemblyzer) and DNSMOS.

    Args:
        sim: an ``engines.scoring.sim.SimilarityEngine``.
        mos: an ``engines.scoring.mos.MOSEngine``.
    """

    encoder = "resemblyzer"

    def __init__(self, sim: Any, mos: Any) -> None:
        self.sim = sim
        self.mos = mos

    def embed(self, audio: np.ndarray, sr: int) -> list[float] | None:
        """A unit speaker embedding rounded for JSON, or None when the clip holds too little speech."""
        if audio.size < 0.5 * sr:
            return None
        try:
            with encoder_threads():
                vector = self.sim.embed(self.encoder, audio, sr)
            return [round(float(x), 5) for x in vector]
        except LabError as exc:  # too short or silent once trimmed: no evidence either way
            log.debug("No speaker embedding: %s", exc)
            return None

    def embed_file(self, path: Any) -> np.ndarray:
        """A reference clip's embedding (raises the encoder's AudioError for unusable audio)."""
        with encoder_threads():
            return np.asarray(self.sim.embed(self.encoder, path), dtype=np.float64)

    def embed_batch(self, clips: Sequence[np.ndarray], sr: int) -> list[list[float] | None]:
        """``embed`` of each clip, the encoder run over all of them together (same values, fewer calls)."""
        out: list[list[float] | None] = [None] * len(clips)
        todo = [i for i, clip in enumerate(clips) if clip.size >= 0.5 * sr]
        if not todo:
            return out
        try:
            with encoder_threads():
                vectors = self.sim.embed_batch(self.encoder, [clips[i] for i in todo], sr)
        except LabError as exc:  # the encoder cannot run: no evidence for any clip, as ``embed`` says per clip
            log.debug("No speaker embeddings: %s", exc)
            return out
        for i, vector in zip(todo, vectors, strict=True):
            if isinstance(vector, LabError):
                log.debug("No speaker embedding: %s", vector)
            else:
                out[i] = [round(float(x), 5) for x in vector]
        return out

    def dnsmos_batch(self, clips: Sequence[np.ndarray], sr: int) -> list[dict[str, float] | None]:
        """``dnsmos`` of each clip, the P.835 model run over all their windows together (P.808 is not needed)."""
        try:
            scores = self.mos.dnsmos_p835(list(clips), sr)
        except LabError as exc:
            log.debug("No DNSMOS: %s", exc)
            return [None] * len(clips)
        out: list[dict[str, float] | None] = []
        for score in scores:
            if isinstance(score, LabError):
                log.debug("No DNSMOS: %s", score)
                out.append(None)
            else:
                out.append({k.removeprefix("dnsmos_"): round(v, 3) for k, v in score.items()})
        return out

    def dnsmos(self, audio: np.ndarray, sr: int) -> dict[str, float] | None:
        try:
            scores = self.mos.dnsmos(audio, sr)
        except LabError as exc:
            log.debug("No DNSMOS: %s", exc)
            return None
        return {k.removeprefix("dnsmos_"): round(v, 3) for k, v in scores.items() if k != "dnsmos_p808"}


def speaker_changes(
    scorer: Scorer, audio: np.ndarray, sr: int, spans: Sequence[Any], threshold: float = CHANGE_THRESHOLD
) -> list[float]:
    """Times (in the gaps between speech spans) where the voice changes, for the cutter to end clips at.

    Each span of ``CHANGE_MIN_SECONDS`` or more is embedded; two such spans in a row (shorter ones between them
    skipped) that are less alike than ``threshold`` put a change in the widest gap between them.
    """
    long = [i for i, span in enumerate(spans) if span.end - span.start >= CHANGE_MIN_SECONDS]
    embs = scorer.embed_batch([audio[int(spans[i].start * sr) : int(spans[i].end * sr)] for i in long], sr)
    embedded = [(i, np.asarray(emb)) for i, emb in zip(long, embs, strict=True) if emb is not None]
    changes: list[float] = []
    for (i, a), (j, b) in zip(embedded, embedded[1:]):
        if float(a @ b) >= threshold:
            continue
        k = max(range(i, j), key=lambda g: spans[g + 1].start - spans[g].end)
        changes.append((spans[k].end + spans[k + 1].start) / 2)
    return changes


def clips_scores(
    scorer: Scorer,
    clips: Sequence[np.ndarray],
    sr: int,
    speech: Sequence[tuple[float, float]],
    dnsmos: Sequence[dict[str, float] | None] | None = None,
) -> list[dict[str, Any]]:
    """What the decisions need of each clip: embeddings (whole, and halves of a long clip) and DNSMOS.

    The clips of a file are scored together (one batched call per model, the same values as one call per clip).

    Args:
        clips: each clip's samples.
        speech: per clip, (first, last) second of speech inside it (halves split the speech, not the padding).
        dnsmos: each clip's ``Scorer.dnsmos_batch`` score when the caller computed it already; None = score here.
    """
    pieces: list[np.ndarray] = list(clips)
    halves_at: dict[int, int] = {}  # clip -> index of its first half in ``pieces``
    for i, (clip, (a, b)) in enumerate(zip(clips, speech, strict=True)):
        if b - a >= HALF_MIN_SECONDS:
            mid = int((a + b) / 2 * sr)
            halves_at[i] = len(pieces)
            pieces += [clip[int(a * sr) : mid], clip[mid : int(b * sr)]]
    embs = scorer.embed_batch(pieces, sr)
    mos = list(dnsmos) if dnsmos is not None else scorer.dnsmos_batch(clips, sr)
    out: list[dict[str, Any]] = []
    for i in range(len(clips)):
        scores: dict[str, Any] = {"emb": embs[i], "dnsmos": mos[i]}
        if i in halves_at:
            halves = embs[halves_at[i] : halves_at[i] + 2]
            if all(h is not None for h in halves):
                scores["emb_halves"] = halves
        out.append(scores)
    return out


# ----- the target speaker -----


def dominant(embs: np.ndarray, weights: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The centroid of the voice holding the most seconds, and which rows belong to it.

    The seed is the clip with the most seconds of look-alike clips (cosine >= ``threshold``); the centroid is
    the seconds-weighted mean of its look-alikes, refined twice against itself.
    """
    sims = embs @ embs.T
    seed = int(np.argmax(((sims >= threshold) * weights[None, :]).sum(axis=1)))
    members = sims[seed] >= threshold
    centroid = embs[seed]
    for _ in range(3):
        if not members.any():
            break
        centroid = unit((embs[members] * weights[members, None]).sum(axis=0))
        members = embs @ centroid >= threshold
    return centroid, members


def assign_speakers(
    entries: Mapping[str, dict[str, Any]],
    embs: Mapping[str, list[float] | None],
    target: str,
    threshold: float,
    reference: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Score every clip against its target voice; in "all" mode also name each clip's cluster.

    Clips are grouped by their speaker name (the user's speakers stay apart). Per group the target is the
    dominant voice ("dominant"), the reference clips' voice ("reference"), or, in "all" mode, each cluster of
    ``MIN_CLUSTER_SECONDS`` or more in turn, named ``<speaker>``, ``<speaker>-2``, ... by seconds held.

    Returns:
        {clip: {"sim": float | None, "speaker": name (only in "all" mode), "target": centroid,
        "target_seconds": seconds of speech in the dominant voice (only in "dominant" mode)}}.
    """
    out: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for clip, entry in entries.items():
        groups.setdefault(str(entry.get("speaker", "")), []).append(clip)
    for speaker, clips in groups.items():
        have = [c for c in clips if embs.get(c) is not None]
        for c in clips:
            out[c] = {"sim": None, "target": None}
        if not have:
            continue
        matrix = np.stack([unit(embs[c]) for c in have])  # type: ignore[arg-type]
        weights = np.array([float(entries[c].get("duration", 1.0)) for c in have])
        if target == "reference" and reference is not None:
            centroid = unit(reference)
            for c, s in zip(have, matrix @ centroid):
                out[c] = {"sim": round(float(s), 4), "target": centroid}
            continue
        if target != "all":
            centroid, members = dominant(matrix, weights, threshold)
            held = round(float(weights[members].sum()), 2)
            for c, s in zip(have, matrix @ centroid):
                out[c] = {"sim": round(float(s), 4), "target": centroid, "target_seconds": held}
            continue
        left = np.ones(len(have), dtype=bool)
        number = 1
        while left.any() and weights[left].sum() >= MIN_CLUSTER_SECONDS:
            idx = np.flatnonzero(left)
            centroid, members = dominant(matrix[idx], weights[idx], threshold)
            if not members.any() or weights[idx][members].sum() < MIN_CLUSTER_SECONDS:
                break
            name = speaker if number == 1 else f"{speaker}-{number}"
            for k, s in zip(idx, matrix[idx] @ centroid):
                # a clip goes to the first cluster it matches; the rest wait for the next cluster
                if s >= threshold or out[have[k]]["target"] is None:
                    out[have[k]] = {"sim": round(float(s), 4), "target": centroid, "speaker": name}
            left[idx[members]] = False
            number += 1
    return out


# ----- decisions -----


def _half_sims(halves: Sequence[list[float]] | None, target: np.ndarray | None) -> list[float] | None:
    if not halves or target is None:
        return None
    return [round(float(unit(h) @ target), 4) for h in halves]


def speaker_decision(entry: Mapping[str, Any], t: Thresholds) -> str | None:
    """Why a clip is another speaker's (its drop reason), or None."""
    sim = entry.get("sim")
    if sim is not None and sim < t.min_similarity:
        return f"{OTHER_SPEAKER} (similarity {sim:.2f} < {t.min_similarity:.2f})"
    halves = entry.get("sim_halves")
    if halves and min(halves) < min(t.min_similarity, HALF_THRESHOLD):
        return f"{MIXED} (halves {halves[0]:.2f} / {halves[1]:.2f})"
    return None


def target_unsure(entry: Mapping[str, Any]) -> str | None:
    """Why a speaker call on this clip is only a flag: its main voice holds too little speech to be the target."""
    held = entry.get("target_seconds")
    if held is None or held >= MIN_TARGET_SECONDS:
        return None
    return (
        f"{UNSURE}: the main voice of {entry.get('speaker') or 'this speaker'!r} holds only {held:.1f} s of speech "
        f"(under {MIN_TARGET_SECONDS:g} s), too little to tell who the target is; listen, or give reference clips"
    )


def dnsmos_problems(entry: Mapping[str, Any], t: Thresholds) -> list[str]:
    """Each DNSMOS threshold the clip fails, with its score."""
    problems = []
    mos = entry.get("dnsmos") or {}
    if mos.get("bak") is not None and mos["bak"] < t.min_bak:
        problems.append(f"noisy or music (DNSMOS BAK {mos['bak']:.2f} < {t.min_bak:g})")
    if mos.get("sig") is not None and mos["sig"] < t.min_sig:
        problems.append(f"distorted (DNSMOS SIG {mos['sig']:.2f} < {t.min_sig:g})")
    elif mos.get("ovrl") is not None and mos["ovrl"] < t.min_ovrl:
        problems.append(f"noisy or distorted (DNSMOS OVRL {mos['ovrl']:.2f} < {t.min_ovrl:g})")
    return problems


def quality_problems(entry: Mapping[str, Any], t: Thresholds, median_cps: float | None, language: str) -> list[str]:
    """Each quality threshold the clip fails, with its score (DNSMOS first)."""
    problems = dnsmos_problems(entry, t)
    cps = entry.get("cps")
    if median_cps and cps is not None and not median_cps / t.cps_ratio <= cps <= median_cps * t.cps_ratio:
        problems.append(f"speaking rate {cps:.1f} chars/s vs the dataset's median {median_cps:.1f}: text misaligned?")
    heard = entry.get("heard_language")
    # Whisper names only its own languages: a language it does not know cannot be checked this way
    if heard and language and language.split("-")[0] in whisper_languages() and heard != language.split("-")[0]:
        problems.append(f"language: Whisper hears {heard!r}, the dataset is {language!r}")
    return problems


def chars_per_second(text: str, speech_seconds: float) -> float | None:
    """Characters (spaces not counted) per second of speech."""
    if speech_seconds <= 0.2:
        return None
    return round(len(text.replace(" ", "")) / speech_seconds, 2)


def median_cps(entries: Iterable[Mapping[str, Any]]) -> float | None:
    values = [float(e["cps"]) for e in entries if e.get("cps") is not None]
    return float(np.median(values)) if len(values) >= CPS_MIN_CLIPS else None


def decide(
    entries: dict[str, dict[str, Any]], t: Thresholds, language: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Split scored clips into (kept, dropped); every entry gets its ``screen`` flags or ``drop_reason``.

    A clip the user restored or dropped by hand (``decision``: "keep" / "drop") keeps that decision; an
    automatic one is made again from the stored scores. Flags (quality_action "flag") go into ``screen``,
    which ``clip_flags`` shows.
    """
    kept: dict[str, dict[str, Any]] = {}
    dropped: dict[str, dict[str, Any]] = {}
    for e in entries.values():
        e.pop("drop_reason", None)
        e["screen"] = []
        reason = speaker_decision(e, t)
        if reason and e.get("decision") != "keep":
            unsure = target_unsure(e)
            if unsure:
                e["screen"] = [f"{reason}; {unsure}"]
            else:
                e["drop_reason"] = reason
    median = median_cps(e for e in entries.values() if "drop_reason" not in e)
    for clip, e in entries.items():
        problems = quality_problems(e, t, median, language)
        flags: list[str] = []
        if float(e.get("duration", 0.0)) < t.dnsmos_min_seconds:
            # DNSMOS tiles a short clip to 9 s, which pulls clean speech down: there its calls are only flags
            mos = dnsmos_problems(e, t)
            note = f" (a clip under {t.dnsmos_min_seconds:g} s: DNSMOS is unreliable there; listen)"
            flags = [p + note for p in mos]
            problems = [p for p in problems if p not in mos]
        if "drop_reason" not in e and e.get("decision") != "keep":
            if problems and t.quality_action == "drop":
                e["drop_reason"] = "; ".join(problems)
            else:
                e["screen"] = e["screen"] + flags + problems
        if e.get("decision") == "drop":
            e["drop_reason"] = e.get("drop_reason") or "dropped by hand"
        (dropped if "drop_reason" in e else kept)[clip] = e
    return kept, dropped


def score_against_targets(
    entries: dict[str, dict[str, Any]],
    embs: Mapping[str, Mapping[str, Any]],
    target: str,
    threshold: float,
    reference: np.ndarray | None,
) -> None:
    """Fill ``sim`` and ``sim_halves`` (and, in "all" mode, ``speaker``) of every entry from its embeddings."""
    assigned = assign_speakers(entries, {c: embs.get(c, {}).get("emb") for c in entries}, target, threshold, reference)
    for clip, e in entries.items():
        got = assigned.get(clip, {})
        e["sim"] = got.get("sim")
        if got.get("target_seconds") is None:
            e.pop("target_seconds", None)
        else:
            e["target_seconds"] = got["target_seconds"]
        halves = _half_sims(embs.get(clip, {}).get("emb_halves"), got.get("target"))
        if halves is None:
            e.pop("sim_halves", None)
        else:
            e["sim_halves"] = halves
        if "speaker" in got and e.get("decision") is None and not e.get("speaker_edited"):
            e["speaker"] = got["speaker"]


def seconds_by_outcome(
    kept: Mapping[str, Mapping[str, Any]], dropped: Mapping[str, Mapping[str, Any]]
) -> dict[str, float]:
    """Seconds kept, dropped as another speaker, dropped for quality, flagged for quality."""
    out = {"kept": 0.0, "other_speaker": 0.0, "quality_dropped": 0.0, "quality_flagged": 0.0, "other_dropped": 0.0}
    for e in kept.values():
        out["kept"] += float(e.get("duration", 0.0))
        if e.get("screen"):
            out["quality_flagged"] += float(e.get("duration", 0.0))
    for e in dropped.values():
        reason = str(e.get("drop_reason", ""))
        key = (
            "other_speaker"
            if reason.startswith(SPEAKER_REASONS)
            else "quality_dropped"
            if reason.startswith(QUALITY_REASONS)
            else "other_dropped"
        )
        out[key] += float(e.get("duration", 0.0))
    return {k: round(v, 2) for k, v in out.items()}
