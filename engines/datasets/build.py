"""One build: sources -> decode, mono, 22.05 kHz, silence check, loudness, cut, per-clip Whisper, checks, write.

Resumable: every finished source file leaves ``.manifest/<sha256>.json`` (its clips, report and the
settings key it was made with), so a re-run skips the files whose key still matches ("already prepared -
skipping"). While clips change, dataset.json says "building" and no metadata CSV exists; a build that
raises leaves "failed" (or, if it created the dataset and finished nothing, no folder at all).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from engines.asr.options import whisper_languages
from engines.core.audio import (
    clipped_fraction,
    file_sha256,
    is_silent,
    load_audio,
    normalize_loudness,
    resample,
    rms_dbfs,
    save_wav,
    write_json,
)
from engines.core.errors import AudioError, AudioTooLargeError, InputError
from engines.core.progress import LogFn, ProgressFn
from engines.core.provenance import app_version, utc_now
from engines.datasets import screening, store
from engines.datasets.clips import assign_split, clip_flags, multilingual, transcribe_clips
from engines.datasets.cutting import Piece, clean_text, plan_clips, speech_spans
from engines.datasets.ingest import (
    Source,
    TranscriptRow,
    expand_inputs,
    read_transcripts,
    source_speaker,
    unique_sources,
)
from engines.datasets.options import ASR_RATE, FORMAT_VERSION, MIN_MINUTES, NO_INPUT, SAMPLE_RATE, DatasetOptions
from engines.datasets.results import DatasetReport, FileReport

log = logging.getLogger(__name__)
ORIGINALS = "wavs_original"  # the uncleaned span of each clip, when a clean-up ran (not read by the trainer)
CLEANED = "wavs_cleaned"  # a clip's cleaned audio while the user trains it on its original (review.use_audio)

# tiny mode's Whisper (random weights, ``engines.asr.engine.TINY_MODEL_ID``) writes gibberish in random
# languages: its texts say nothing about speaking rate or language, so those checks are off with it
RANDOM_ASR = "tiny-random"

# (source, settings key, transcripts row, speaker, manifest of an earlier run)
Plan = tuple[Source, str, TranscriptRow | None, str, dict[str, Any] | None]


class _NoClips(InputError):
    """Internal: a build that kept no clip (the user's message; the dataset it created is removed)."""


class Builder:
    """Runs builds with explicit collaborators (``DatasetEngine.build`` holds the dataset's claim around ``run``)."""

    def __init__(
        self,
        asr: Any,
        max_upload_mb: int,
        check_not_in_use: Callable[[str, str], None],
        token_counter: Callable[[str, str], int] | None = None,
        scorer: screening.Scorer | None = None,
        cleanup: screening.Cleanup | None = None,
    ) -> None:
        """
        Args:
            asr: an ``engines.asr.engine.engine.ASREngine`` (default model, language check, per-clip transcription).
            max_upload_mb: largest audio file or zip (``settings.max_upload_mb``).
            check_not_in_use: ``check_not_in_use(name, what)`` raises BusyError while a training run uses
                the dataset (before an overwrite).
            token_counter: the trainer's tokenizer count, for the report's flagged clips (see ``clip_flags``).
            scorer: the speaker and quality models (``screening.Scorer``); None = no screening.
            cleanup: an audio clean-up run on each source before cutting (``screening.Cleanup``); None = none.
        """
        self.asr = asr
        self.max_upload_mb = max_upload_mb
        self.check_not_in_use = check_not_in_use
        self.token_counter = token_counter
        self.scorer = scorer
        self.cleanup = cleanup

    def run(
        self,
        root: Path,
        name: str,
        paths: list[Path],
        language: str,
        transcripts: str | Path | None,
        options: DatasetOptions,
        progress: ProgressFn,
        log_fn: LogFn,
        staging: Path,
    ) -> DatasetReport:
        """Build (or resume, or re-use) the dataset at ``root`` from checked inputs; see ``DatasetEngine.build``.

        Args:
            staging: an empty scratch folder for unpacked zips (the caller removes it).
        """
        report = DatasetReport(name=name, path=root, language=language)
        progress(0.0, desc="Reading inputs")
        sources = expand_inputs(paths, staging, options, report, self.max_upload_mb)
        if not sources and not report.files:
            raise InputError(NO_INPUT)
        unique = unique_sources(sources, report)
        early_rows = list(report.files)  # inputs skipped before processing: not audio, unsafe, duplicates

        rows, transcripts_info = read_transcripts(transcripts, unique, options, name, report, log_fn)

        model_id = options.model_id or self.asr.default_model()
        unheard = [s for s in unique if s.sha256 not in rows]
        if unheard:  # Whisper will hear these files
            if language.split("-")[0] not in whisper_languages() and language != "zh-cn":
                raise InputError(
                    f"Whisper does not know the language {language!r}, so it cannot transcribe "
                    f"{len(unheard)} file(s) without a transcript ({', '.join(s.name for s in unheard[:3])}). Give a "
                    "transcripts file with the text of every recording (file|text per line)."
                )
            self.asr.check_language(model_id, language)  # before anything is created
        screen = self._screen_setup(options, model_id)  # reference clips are read before anything is created

        meta = store.read_json(root / "dataset.json") if root.is_dir() else None
        # a folder without metadata or clips (a build killed before its first write) is free to use
        has_content = root.is_dir() and (
            meta is not None or (root / "metadata_train.csv").exists() or any((root / "wavs").glob("*.wav"))
        )
        if has_content:
            if options.overwrite:
                self.check_not_in_use(name, "overwrite it")
                shutil.rmtree(root)
                meta = None
            else:
                before = {i.get("sha256") for i in (meta or {}).get("inputs", [])}
                if meta is None or before != {s.sha256 for s in unique}:
                    raise InputError(
                        f"A dataset named {name!r} already exists"
                        + (" with other source files" if meta is not None else "")
                        + ". Choose another name, or tick 'Overwrite' to replace it."
                    )
        created_now = meta is None
        (root / "wavs").mkdir(parents=True, exist_ok=True)
        (root / ".manifest").mkdir(exist_ok=True)

        plans: list[Plan] = []
        for source in unique:
            row = rows.get(source.sha256)
            speaker = source_speaker(source, row, options, name)
            key = _settings_key(
                options, language, model_id, row.text if row else None, speaker, source.base, screen["per_file"]
            )
            manifest = store.read_json(root / ".manifest" / f"{source.sha256}.json")
            plans.append((source, key, row, speaker, manifest))
        todo = [p for p in plans if not (p[4] and p[4].get("key") == p[1])]

        if meta is None or todo or meta.get("status") != "ready":
            meta = meta or {"format": FORMAT_VERSION, "name": name, "created": utc_now(), "clips": {}}
            meta.update(
                {
                    "language": language,
                    "status": "building",
                    "updated": utc_now(),
                    "inputs": [{"source": s.name, "sha256": s.sha256} for s in unique],
                }
            )
            meta.pop("error", None)
            write_json(root / "dataset.json", meta)
            # clips are about to change: no metadata CSV may describe a half-built dataset (training
            # lists folders by their metadata_train.csv); the finished build writes them again
            for split in ("train", "eval"):
                (root / f"metadata_{split}.csv").unlink(missing_ok=True)

        try:
            manifests, processed = self._process_all(
                root, plans, language, options, model_id, progress, log_fn, report, screen
            )
            progress(1.0, desc="Writing metadata")
            for m in manifests.values():
                _counter_add(report.dropped, m.get("dropped", {}))
            meta = _assemble(root, meta, unique, manifests, processed, options, language, model_id, screen)
            outcome = _outcomes(meta, manifests)
            # stored per-file report: the same on every run (no "already prepared" wording)
            meta["files"] = [asdict(f) for f in early_rows] + [
                asdict(_file_report(manifests[s.sha256], outcome=outcome.get(s.sha256))) for s in unique
            ]
            for f in report.files:
                if f.sha256 in outcome:
                    _fill_outcome(f, outcome[f.sha256])
            report.screening = _screen_record(screen, options)
            meta["screening"] = report.screening
            report.dropped_clips = len(meta.get("dropped_clips", {}))
            report.outcome = {
                k: round(sum(o[k] for o in outcome.values()), 2)
                for k in ("kept", "other_speaker", "quality_dropped", "quality_flagged", "cleaned")
            }
            meta["outcome"] = report.outcome
            meta["dropped"] = report.dropped
            # which clean-up ran on which source: steps, models, weight hashes (originals in wavs_original/)
            meta["cleanup"] = {
                s.name: manifests[s.sha256]["cleaned"] for s in unique if manifests.get(s.sha256, {}).get("cleaned")
            }
            if transcripts_info is not None:
                meta["transcripts"] = transcripts_info
            clips = meta["clips"]
            if not clips:
                why = Counter(f.reason for f in report.files if f.status == "skipped")
                raise _NoClips(
                    f"No clips could be kept from {len(report.files)} file(s): "
                    + ", ".join(f"{k} {v}" for k, v in why.most_common())
                    + (
                        ". Clips dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(report.dropped.items()))
                        if report.dropped
                        else ""
                    )
                    + _screen_drops(meta.get("dropped_clips", {}))
                    + ". Upload recordings with audible speech (and a transcripts file, or a Whisper model that "
                    "hears it)."
                )
            store.save(root, meta)
        except Exception as exc:
            _mark_failed(root, meta, created_now, exc)
            raise
        report.clips = len(clips)
        report.seconds = float(sum(c["duration"] for c in clips.values()))
        report.train_clips = sum(c.get("split") == "train" for c in clips.values())
        report.eval_clips = report.clips - report.train_clips
        limits = store.limits(meta)
        report.flagged = sum(bool(clip_flags(c, limits, language, self.token_counter)) for c in clips.values())
        if report.minutes < MIN_MINUTES:
            report.notices.append(
                f"Only {report.minutes:.1f} min of speech: a fine-tune wants at least "
                f"{MIN_MINUTES:g} min (10+ min is better)."
            )
        log_fn(report.summary())
        return report

    def _screen_setup(self, options: DatasetOptions, model_id: str) -> dict[str, Any]:
        """What this build screens with: on/off, per-clip language detection, the reference voice.

        Raises:
            InputError: a reference speaker without the scoring models; an unreadable reference clip.
        """
        on = options.screen and self.scorer is not None
        if options.screen and options.target == "reference" and self.scorer is None:
            raise InputError("A reference speaker needs the speaker encoder; this dataset engine was made without one.")
        screen: dict[str, Any] = {
            "on": on,
            "detect_language": bool(
                on and options.check_clip_language and model_id != RANDOM_ASR and multilingual(self.asr, model_id)
            ),
            "asr_text_checks": model_id != RANDOM_ASR,
            "reference": None,
            "references": [],
        }
        if on and options.target == "reference":
            embs = []
            for ref in options.reference_clips:
                path = Path(ref)
                try:
                    embs.append(self.scorer.embed_file(path))  # type: ignore[union-attr]
                except (AudioError, OSError) as exc:
                    raise InputError(f"Reference clip {path.name}: {exc}") from None
                screen["references"].append({"file": path.name, "sha256": file_sha256(path)})
            screen["reference"] = screening.unit(np.mean(embs, axis=0))
        # what a finished file's clips depend on (thresholds and the target do not: they are decided afresh)
        screen["per_file"] = {
            "screen": on,
            "language_check": screen["detect_language"],
            "cleanup": getattr(self.cleanup, "name", type(self.cleanup).__name__) if self.cleanup else None,
        }
        return screen

    def _process_all(
        self,
        root: Path,
        plans: list[Plan],
        language: str,
        options: DatasetOptions,
        model_id: str,
        progress: ProgressFn,
        log_fn: LogFn,
        report: DatasetReport,
        screen: dict[str, Any],
    ) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Every source through ``_process`` (or reused from its manifest); one manifest written per file."""
        processed: set[str] = set()
        manifests: dict[str, dict[str, Any]] = {}
        total = max(1, len(plans))
        for i, (source, key, row, speaker, manifest) in enumerate(plans):
            progress(i / total, desc=f"[{i + 1}/{len(plans)}] {source.name}")
            if manifest and manifest.get("key") == key:
                log_fn(f"{source.name}: already prepared - skipping")
                manifests[source.sha256] = manifest
                report.files.append(_file_report(manifest, reused=True))
                report.reused += 1
                continue
            if manifest:  # finished before with other settings: its clips go
                for entry in manifest.get("clips", []):
                    (root / "wavs" / entry["clip"]).unlink(missing_ok=True)
            manifest = self._process(root, source, language, options, model_id, row, speaker, screen)
            manifest["key"] = key
            write_json(root / ".manifest" / f"{source.sha256}.json", manifest)
            manifests[source.sha256] = manifest
            processed.add(source.sha256)
            file_report = _file_report(manifest)
            report.files.append(file_report)
            log_fn(f"{source.name}: {file_report.status}" + (f" ({file_report.detail})" if file_report.detail else ""))
        return manifests, processed

    def _process(
        self,
        root: Path,
        source: Source,
        language: str,
        options: DatasetOptions,
        model_id: str,
        row: TranscriptRow | None,
        speaker: str,
        screen: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One source file -> clips on disk; returns its manifest (report, clips, dropped counts).

        Silence is the VAD's call (level-independent), with ``silence_db`` only as a floor for digital
        silence. Cuts go in the VAD's pauses (``speech_spans`` + ``plan_clips``); each kept clip is then
        transcribed on its own. Files with a transcripts row are kept whole with their text.
        """
        m: dict[str, Any] = {
            "sha256": source.sha256,
            "source": source.name,
            "base": source.base,
            "speaker": speaker,
            "transcript": "supplied" if row else "whisper",
            "status": "skipped",
            "reason": "",
            "detail": "",
            "seconds": 0.0,
            "clips": [],
            "dropped": {},
            "finished": utc_now(),
        }
        try:
            raw, sr = load_audio(source.path, max_mb=self.max_upload_mb)
        except AudioError as exc:
            m.update(reason="too large" if isinstance(exc, AudioTooLargeError) else "not audio", detail=str(exc))
            return m
        seconds = len(raw) / sr
        m["seconds"] = round(seconds, 3)
        original = None
        if self.cleanup is not None:
            # the clean-up hears the source at its own rate; clips are cut from what it gives back, and the same
            # span of the original is kept beside each clip (wavs_original/) so review can play both
            original = normalize_loudness(resample(raw, sr, SAMPLE_RATE))
            raw = np.asarray(self.cleanup(raw, sr), dtype=np.float32)
            m["cleaned"] = {
                "by": getattr(self.cleanup, "name", type(self.cleanup).__name__),
                "seconds": m["seconds"],
                "steps": list(getattr(self.cleanup, "records", [])),  # model names, weight hashes, seconds
            }
        audio = resample(raw, sr, SAMPLE_RATE)
        scorer = self.scorer if screen and screen["on"] else None
        whole = row is not None
        pad = options.pad_ms / 1000.0
        max_span = options.max_clip - 2 * min(pad, options.max_clip / 4)
        # the VAD decides where (and whether) there is speech, at any level; the floor only catches
        # digital silence and dither, where there is nothing for a detector to judge
        audio_16k = resample(raw, sr, ASR_RATE)
        if is_silent(audio, options.silence_db):
            spans = []
        else:  # a file kept whole only needs to hold speech: no second look for pauses inside it
            spans = speech_spans(audio_16k, float("inf") if whole else max_span)
        if not spans:
            level = rms_dbfs(audio)
            m.update(
                reason="silent",
                detail=(
                    f"level {level:.0f} dBFS is under the silence floor ({options.silence_db:g} dBFS)"
                    if level < options.silence_db
                    else f"no speech found (voice activity detection; level {level:.0f} dBFS)"
                ),
            )
            return m
        normalized = normalize_loudness(audio)
        if row is not None:  # kept whole
            pieces = [Piece(0.0, seconds, row.text, 0.0, seconds)]
        else:
            # a turn change between two stretches of speech ends a clip there, as a pause may
            changes = screening.speaker_changes(scorer, audio_16k, ASR_RATE, spans) if scorer else []
            if changes:
                m["speaker_changes"] = [round(t, 2) for t in changes]
            pieces = plan_clips(
                spans,
                seconds,
                min_clip=options.min_clip,
                max_clip=options.max_clip,
                pad=pad,
                language=language,
                breaks=changes,
            )
        dropped: Counter[str] = Counter()
        unsplit: list[str] = []
        # (index, piece, first sample, last sample, seconds, reason): every cut is judged before Whisper hears any
        cuts: list[tuple[int, Piece, int, int, float, str | None]] = []
        for k, piece in enumerate(pieces):
            a, b = int(round(piece.start * SAMPLE_RATE)), int(round(piece.end * SAMPLE_RATE))
            duration = (b - a) / SAMPLE_RATE
            reason = None
            if not whole and (not piece.fits or duration > options.max_clip + 1e-6):
                reason = "too long"  # speech with no pause to cut at: never shipped cut mid-speech
                unsplit.append(f"{piece.speech_start:.1f}-{piece.speech_end:.1f} s")
            elif not whole and duration < options.min_clip:
                reason = "too short"
            elif b - a == 0:
                reason = "silent"
            elif clipped_fraction(raw[int(piece.start * sr) : int(piece.end * sr)]) > options.max_clipped:
                reason = "clipped"
            cuts.append((k, piece, a, b, duration, reason))
        todo = [c for c in cuts if c[5] is None]
        heard: dict[int, tuple[str, str | None]] = {}
        quality: dict[int, dict[str, float] | None] = {}
        # DNSMOS (onnxruntime, no model lock) scores the cut clips while Whisper hears them; a clip Whisper then
        # drops ("no transcript") is not kept, nor its score
        with ThreadPoolExecutor(max_workers=1) as pool:
            mos = (
                pool.submit(scorer.dnsmos_batch, [normalized[a:b] for _, _, a, b, _, _ in todo], SAMPLE_RATE)
                if (scorer is not None and todo)
                else None
            )
            if not whole:
                # each clip is transcribed on its own (its text is what its audio says, nothing from a neighbour),
                # the clips of one file decoded together
                detect = bool(screen and screen["detect_language"])
                results = transcribe_clips(
                    self.asr,
                    [normalized[a:b] for _, _, a, b, _, _ in todo],
                    None if detect else language,
                    model_id,
                    [f"{source.name} {piece.start:.1f} s" for _, piece, _, _, _, _ in todo],
                )
                heard = {c[0]: (text, lang if detect else None) for c, (text, lang) in zip(todo, results, strict=True)}
            if mos is not None:
                quality = {c[0]: score for c, score in zip(todo, mos.result(), strict=True)}
        # entry, samples, (first, last) second of speech inside, language heard: scored once all are cut
        kept: list[tuple[dict[str, Any], np.ndarray, tuple[float, float], str | None]] = []
        kept_mos: list[dict[str, float] | None] = []
        for k, piece, a, b, duration, reason in cuts:
            text, language_heard = heard.get(k, (clean_text(piece.text), None))
            if reason is None and not text:
                reason = "no transcript"
            if reason:
                dropped[reason] += 1
                continue
            clip = f"{source.base}.wav" if whole else f"{source.base}_{k:03d}.wav"
            save_wav(root / "wavs" / clip, normalized[a:b], SAMPLE_RATE)
            if original is not None:
                save_wav(root / ORIGINALS / clip, original[a:b], SAMPLE_RATE)
            notes = []
            if whole and duration > options.max_clip:
                notes.append(f"kept whole: longer than max clip ({options.max_clip:g} s)")
            elif whole and duration < options.min_clip:
                notes.append(f"kept whole: shorter than min clip ({options.min_clip:g} s)")
            m["clips"].append(
                {
                    "clip": clip,
                    "text": text,
                    "speaker": speaker,
                    "duration": round(duration, 3),
                    "source": source.name,
                    "sha256": source.sha256,
                    "start": round(piece.start, 3),
                    "end": round(piece.end, 3),
                    "origin": m["transcript"],
                    "notes": notes,
                }
            )
            if scorer is not None:
                entry = m["clips"][-1]
                inside = (max(0.0, piece.speech_start - piece.start), min(duration, piece.speech_end - piece.start))
                if whole:
                    inside = (spans[0].start, spans[-1].end)
                kept.append((entry, normalized[a:b], inside, language_heard))
                kept_mos.append(quality[k])
        if scorer is not None and kept:  # the encoder sees the file's clips together
            scores = screening.clips_scores(
                scorer, [c[1] for c in kept], SAMPLE_RATE, [c[2] for c in kept], dnsmos=kept_mos
            )
            for (entry, _, inside, language_heard), score in zip(kept, scores, strict=True):
                entry.update(score)
                if whole or (screen or {}).get("asr_text_checks", True):
                    entry["cps"] = screening.chars_per_second(entry["text"], inside[1] - inside[0])
                if language_heard:
                    entry["heard_language"] = language_heard
        if unsplit:
            m["unsplit"] = unsplit
        m["dropped"] = dict(dropped)
        drops = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        if unsplit:
            drops += f" (speech over {options.max_clip:g} s without a pause at {', '.join(unsplit[:3])})"
        if m["clips"]:
            m.update(status="kept", detail=f"{len(m['clips'])} clip(s)" + (f"; dropped: {drops}" if drops else ""))
        else:
            main = dropped.most_common(1)[0][0] if dropped else "no clips"
            m.update(reason=main, detail=f"no clip kept (dropped: {drops or 'none planned'})")
        return m


def _screen_drops(dropped: Mapping[str, Mapping[str, Any]]) -> str:
    """The no-clips message's part about the speaker and quality checks: how many each reason dropped."""
    if not dropped:
        return ""
    reasons = Counter(str(e.get("drop_reason", "")).split(" (")[0].split(";")[0] for e in dropped.values())
    example = next(iter(dropped.values())).get("drop_reason", "")
    return (
        f". The speaker and quality checks dropped {len(dropped)} clip(s): "
        + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        + f" (e.g. {example}); pick another target speaker, 'Flag only' for quality, or other thresholds"
    )


def _mark_failed(root: Path, meta: dict[str, Any], created_now: bool, exc: Exception) -> None:
    """A build that raised: no half dataset is left looking usable.

    A dataset this build created is removed when no file finished (or none gave a clip). Otherwise
    dataset.json says "failed" with the error (the list shows it; a re-run resumes from the finished
    files, Delete removes it) and no metadata CSV exists (removed when the build started changing clips).
    """
    finished = any((root / ".manifest").glob("*.json"))
    if created_now and (not finished or isinstance(exc, _NoClips)):
        shutil.rmtree(root, ignore_errors=True)
        return
    meta = dict(meta)
    meta.update({"status": "failed", "error": str(exc) or type(exc).__name__, "updated": utc_now()})
    try:
        write_json(root / "dataset.json", meta)
    except OSError:  # the disk that failed the build may fail this too: the status stays "building"
        log.warning("Could not mark dataset %s as failed", root.name, exc_info=True)


def _assemble(
    root: Path,
    meta: dict[str, Any],
    sources: list[Source],
    manifests: dict[str, dict[str, Any]],
    processed: set[str],
    options: DatasetOptions,
    language: str,
    model_id: str,
    screen: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """dataset.json's clip table from the manifests, keeping the user's edits of unchanged files.

    A clip whose wav is gone was deleted (or re-cut) by the user: it stays gone. With screening on, every
    clip is scored against the target voice and kept or dropped (``screening.decide``); dropped clips go to
    ``dropped_clips`` with their reason and scores (their wavs stay, so review can restore them).
    """
    shas = {s.sha256 for s in sources}
    old = {**meta.get("dropped_clips", {}), **meta.get("clips", {})}
    clips = {
        c: e
        for c, e in old.items()
        if e.get("sha256") in shas and e.get("sha256") not in processed and (root / "wavs" / c).is_file()
    }
    added = False
    embs: dict[str, dict[str, Any]] = {}
    for source in sources:
        for entry in manifests.get(source.sha256, {}).get("clips", []):
            embs[entry["clip"]] = {k: entry.get(k) for k in ("emb", "emb_halves")}
            if entry["clip"] not in clips and (root / "wavs" / entry["clip"]).is_file():
                clips[entry["clip"]] = {k: v for k, v in entry.items() if k not in ("emb", "emb_halves")}
                added = True
    dropped: dict[str, dict[str, Any]] = {}
    if screen and screen["on"]:
        screening.score_against_targets(clips, embs, options.target, options.min_similarity, screen.get("reference"))
        clips, dropped = screening.decide(clips, screening.Thresholds.of(asdict(options)), language)
    was_kept = set(meta.get("clips", {}))
    recorded = meta.get("settings") or {}
    # a new eval share or seed is a new split (dataset.json must not record settings the split was not made with)
    resplit = bool(recorded) and (recorded.get("eval_share"), recorded.get("seed")) != (
        options.eval_share,
        options.seed,
    )
    if added or processed or resplit or any("split" not in e for e in clips.values()) or set(clips) != was_kept:
        for clip, split in assign_split(clips, options.eval_share, options.seed).items():
            clips[clip]["split"] = split
    settings = {k: v for k, v in asdict(options).items() if k != "overwrite"}
    settings["model_id"] = model_id
    meta = dict(meta)
    meta.update(
        {
            "format": FORMAT_VERSION,
            "language": language,
            "status": "ready",
            "app_version": app_version(),
            "settings": settings,
            "clips": dict(sorted(clips.items())),
            "dropped_clips": dict(sorted(dropped.items())),
            "inputs": [{"source": s.name, "sha256": s.sha256} for s in sources],
        }
    )
    return meta


def _outcomes(meta: Mapping[str, Any], manifests: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Seconds kept / dropped as another speaker / dropped or flagged for quality / cleaned, per source sha256."""
    by: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {sha: ({}, {}) for sha in manifests}
    for clip, e in meta.get("clips", {}).items():
        by.setdefault(e.get("sha256", ""), ({}, {}))[0][clip] = e
    for clip, e in meta.get("dropped_clips", {}).items():
        by.setdefault(e.get("sha256", ""), ({}, {}))[1][clip] = e
    out = {}
    for sha, (kept, dropped) in by.items():
        cleaned = (manifests.get(sha) or {}).get("cleaned") or {}
        out[sha] = {**screening.seconds_by_outcome(kept, dropped), "cleaned": float(cleaned.get("seconds", 0.0))}
    return out


def _fill_outcome(report: FileReport, outcome: Mapping[str, float]) -> None:
    report.kept_seconds = outcome.get("kept", 0.0)
    report.other_speaker_seconds = outcome.get("other_speaker", 0.0)
    report.quality_dropped_seconds = outcome.get("quality_dropped", 0.0)
    report.quality_flagged_seconds = outcome.get("quality_flagged", 0.0)
    report.cleaned_seconds = outcome.get("cleaned", 0.0)


def _screen_record(screen: Mapping[str, Any], options: DatasetOptions) -> dict[str, Any]:
    """What dataset.json records of the screening, so a rebuild decides the same (thresholds in settings too)."""
    return {
        "on": bool(screen["on"]),
        "encoder": screening.Scorer.encoder,
        "target": options.target,
        "references": screen.get("references", []),
        "language_check": bool(screen["detect_language"]),
        "thresholds": asdict(screening.Thresholds.of(asdict(options))),
        "half_threshold": screening.HALF_THRESHOLD,
        "change_threshold": screening.CHANGE_THRESHOLD,
    }


def _settings_key(
    options: DatasetOptions,
    language: str,
    model_id: str,
    text: str | None,
    speaker: str,
    base: str,
    screen: Mapping[str, Any] | None = None,
) -> str:
    """What a finished file depends on: a change re-does the file, anything else reuses it."""
    data = {
        "v": FORMAT_VERSION,
        "language": language,
        "text": text,
        "speaker": speaker,
        "base": base,
        "model_id": model_id if text is None else None,
        "min_clip": options.min_clip,
        "max_clip": options.max_clip,
        "silence_db": options.silence_db,
        "pad_ms": options.pad_ms,
        "max_clipped": options.max_clipped,
    }
    if screen and any(screen.values()):  # keys of builds without screening stay what they were
        data["screen"] = dict(screen)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _file_report(
    manifest: Mapping[str, Any], reused: bool = False, outcome: Mapping[str, float] | None = None
) -> FileReport:
    report = FileReport(
        source=manifest["source"],
        status=manifest["status"],
        reason=manifest.get("reason", ""),
        detail="already prepared - skipping" if reused else manifest.get("detail", ""),
        clips=len(manifest.get("clips", [])),
        seconds=float(manifest.get("seconds", 0.0)),
        speaker=manifest.get("speaker", ""),
        transcript=manifest.get("transcript", ""),
        sha256=manifest.get("sha256", ""),
        reused=reused,
    )
    if outcome is not None:
        _fill_outcome(report, outcome)
    return report


def _counter_add(target: dict[str, int], source: Mapping[str, int]) -> None:
    for k, v in source.items():
        target[k] = target.get(k, 0) + int(v)
