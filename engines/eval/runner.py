"""The evaluation loop as an object: ``EvalRun`` holds one run's explicit state (folder, plan, rows done,
counters) and its steps (synthesize, transcribe, score), and yields progress after every batch.

Work order: the ground-truth recordings first (the same ASR on real speech shows the ASR's own error),
then each system's utterances in batches of ``asr_batch_size``. results.csv is rewritten atomically after
every batch, so a stopped or killed run keeps what it finished and a resume skips those keys.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from config import XTTS_LANGUAGES, Settings
from engines.core.audio import load_audio, resample, save_wav, write_json
from engines.core.errors import LabError
from engines.core.names import slug
from engines.core.progress import LogFn, ProgressFn
from engines.core.provenance import git_commit, utc_now, versions
from engines.eval.config import EvalConfig
from engines.eval.plan import Planner, System, Voice, match_audio_folder
from engines.eval.quality import QualityScorer
from engines.eval.results import GROUND_TRUTH, RANDOM, read_results, score_row, write_results
from engines.eval.sentences import Sentence, SentenceSet, read_sentences, write_sentences
from engines.eval.store import RunProgress, RunStore, write_status
from engines.eval.summary import fill_weights, write_outputs
from engines.scoring import metrics

if TYPE_CHECKING:  # engine modules import torch; eval only needs their types here
    from engines.asr.engine import ASREngine
    from engines.scoring.mos import MOSEngine
    from engines.scoring.sim import SimilarityEngine
    from engines.tts.engine import TTSEngine

log = logging.getLogger(__name__)

ASR_SR = 16000
BATCH_MAX_SECONDS = 30.0  # Whisper's window: shorter clips are decoded in batches


@dataclass(frozen=True)
class WorkUnit:
    """One batch of the loop: a system's takes (sentence id, repeat), scored together."""

    index: int
    system: str  # a system's name, or GROUND_TRUTH
    items: tuple[tuple[str, int], ...]

    @property
    def keys(self) -> list[str]:
        return [f"{self.system}|{sid}|{rep}" for sid, rep in self.items]


def _take(sentence: Sentence, audio: np.ndarray, sr: int, rel: str) -> dict[str, Any]:
    """A take that was not synthesized here (a recording, a file of an audio folder): no timings, no seed."""
    return {
        "sentence": sentence,
        "repeat": 0,
        "audio": audio,
        "sr": sr,
        "gen_seconds": None,
        "audio_seconds": len(audio) / sr,
        "rtf": None,
        "seed": None,
        "audio_file": rel,
        "notices": [],
    }


def library_versions() -> dict[str, str]:
    """App and library versions for provenance, with the checkout's commit."""
    return {**versions(), "git_commit": git_commit() or "unknown"}


def _system_dict(system: System, tts_weights: str) -> dict[str, Any]:
    return {
        "name": system.name,
        "slug": system.slug,
        "model_id": system.model_id,
        "model_label": system.model_label,
        "voice": system.voice.spec,
        "voice_label": system.voice.label,
        "voice_kind": system.voice.kind,
        "voice_display": system.voice.display,
        "checkpoint": system.checkpoint,
        "tts_weights": tts_weights,
        "audio_dir": system.audio_dir,
    }


def _saved_systems(planner: Planner, folder: Path, saved: dict[str, Any]) -> list[System]:
    """The systems of a run as it recorded them (names unchanged; voices from the copies in refs/)."""
    refs = saved.get("references", {})
    systems = []
    for d in saved["systems"]:
        files = tuple(str(folder / rel) for rel in refs.get(d["voice"], []))
        speaker = d["voice_label"] if d["voice_kind"] == "speaker" else None
        audio_dir = d.get("audio_dir")
        voice = Voice(
            d["voice"],
            d["voice_kind"],
            d["voice_label"],
            files=files,
            speaker=speaker,
            display=d.get("voice_display") or d["voice_label"],
        )
        if audio_dir is None:
            planner.model_languages(d["model_id"])  # the model must still be there
        elif not Path(audio_dir).is_dir():
            raise LabError(f"The audio folder of system {d['name']!r} is gone: {audio_dir}")
        systems.append(
            System(d["name"], d["slug"], d["model_id"], d["model_label"], voice, d.get("checkpoint"), audio_dir)
        )
    return systems


def _copy_references(folder: Path, systems: list[System]) -> dict[str, list[str]]:
    """Copy the reference clips into the run (the report plays them; SIM is against them)."""
    out: dict[str, list[str]] = {}
    for s in systems:
        v = s.voice
        if not v.spec or v.spec in out:
            continue
        out[v.spec] = []
        for i, f in enumerate(v.files):
            src = Path(f)
            dst = folder / "refs" / f"{slug(v.label, 32)}-{i + 1}{src.suffix.lower()}"
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            out[v.spec].append(dst.relative_to(folder).as_posix())
    return out


def _remove_new_folder(folder: Path) -> None:
    """Undo ``EvalRun.new``'s files (only those: an id the user gave may name a folder that held others)."""
    for name in ("config.json", "status.json", "sentences.csv"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "refs", ignore_errors=True)
    try:
        folder.rmdir()
    except OSError:
        log.warning("Left %s in place: it holds files this run did not make", folder)


class EvalRun:
    """One evaluation in progress. Make it with ``new`` or ``resume``; ``steps()`` runs it."""

    def __init__(
        self,
        *,
        settings: Settings,
        tts: TTSEngine,
        asr: ASREngine,
        sim: SimilarityEngine | None = None,
        mos: MOSEngine | None = None,
        planner: Planner,
        folder: Path,
        config: EvalConfig,
        sentence_set: SentenceSet,
        systems: list[System],
        created: str,
        references: dict[str, list[str]],
        asr_model: str,
        rows: list[dict[str, Any]],
        stop: threading.Event,
        progress: ProgressFn,
        log_fn: LogFn,
        remote: Any = None,
    ) -> None:
        self.settings, self.tts, self.asr, self.planner = settings, tts, asr, planner
        # runs the units of an executor="ray" run elsewhere: engines.eval.distributed.run_on_ray (given by EvalEngine)
        self.remote = remote
        self.folder = folder
        self.run_id = folder.name
        self.config = config
        self.sentence_set = sentence_set
        self.systems = systems
        self.asr_model = asr_model
        self.stop_event = stop
        self.progress = progress
        self.log_fn = log_fn
        self.results_path = folder / "results.csv"
        self._warmed: set[str] = set()  # systems whose warm-up synthesis ran in this process
        # rows already finished (a resume keeps those whose audio is still there)
        self.done_keys = {r["key"] for r in rows if r["audio_file"] and (folder / r["audio_file"]).is_file()}
        self.rows = [r for r in rows if r["key"] in self.done_keys]
        self.gt_work = [s for s in sentence_set.sentences if s.audio] if config.ground_truth else []
        # an audio folder's system has one take per sentence it has a file for
        self.folders = {s.name: match_audio_folder(Path(s.audio_dir), sentence_set) for s in systems if s.audio_dir}
        per_system = len(sentence_set.sentences) * config.repeats
        self.total = len(self.gt_work) + sum(
            len(self.folders[s.name].files) if s.external else per_system for s in systems
        )
        self._system_rank = {GROUND_TRUTH: 0, **{s.name: i + 1 for i, s in enumerate(systems)}}
        self._sentence_rank = {s.id: i for i, s in enumerate(sentence_set.sentences)}
        self.asr_weights = planner.asr_weights(asr_model)
        self.tts_weights = {s.name: planner.tts_weights(s.model_id) for s in systems}
        self.asr_options = self._asr_options()
        self.quality = QualityScorer(
            config, systems, tts=tts, sim=sim, mos=mos, unavailable=planner.plan_quality(config, systems)
        )
        self.meta: dict[str, Any] = {
            "run_id": self.run_id,
            "created": created,
            "config": config.to_dict(),
            "systems": [_system_dict(s, self.tts_weights[s.name]) for s in systems],
            "sentence_set": sentence_set.name,
            "n_sentences": len(sentence_set.sentences),
            "has_recordings": sentence_set.has_audio,
            "references": references,
            "provenance": self._provenance(),
            "asr_weights": self.asr_weights,
            "metrics": self._metrics_models(),
            # what Whisper was told per language ("auto" = detected: a language Whisper does not know)
            "asr_languages": {lang: o.language or "auto" for lang, o in self.asr_options.items()},
            "audio_folders": {
                name: {
                    "folder": str(f.folder),
                    "files": len(f.files),
                    "missing": list(f.missing),
                    "extra": list(f.extra),
                }
                for name, f in self.folders.items()
            },
            # any number of this run rests on a random-weight model (summary.json says which, per system)
            "tiny": self.asr_weights == RANDOM or RANDOM in self.tts_weights.values(),
        }

    # ------------------------------------------------------------------ making one

    @classmethod
    def new(cls, store: RunStore, planner: Planner, config: EvalConfig, run_id: str | None, **kw: Any) -> EvalRun:
        """Plan (every check before any folder exists), then create the run folder with its config.json and
        status.json. A failure while making the folder (a reference that cannot be copied, provenance that
        cannot be read) removes what was made: no folder without a status."""
        sentence_set, systems = planner.plan(config)
        folder = store.new_folder(run_id, config.name)
        try:
            write_sentences(folder / "sentences.csv", sentence_set)
            refs = _copy_references(folder, systems)
            asr_model = config.asr_model or planner.asr.default_model()
            run = cls(
                folder=folder,
                config=config,
                sentence_set=sentence_set,
                systems=systems,
                created=utc_now(),
                references=refs,
                asr_model=asr_model,
                rows=[],
                planner=planner,
                **kw,
            )
            write_json(folder / "config.json", run.meta)
            run._status("running", "starting")
        except BaseException:
            _remove_new_folder(folder)
            raise
        return run

    @classmethod
    def resume(cls, store: RunStore, planner: Planner, config: EvalConfig, run_id: str, **kw: Any) -> EvalRun:
        """Reopen a stopped or interrupted run with the sentences, systems and ASR it started with."""
        folder = store.run_dir(run_id)
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        # A resumed run keeps the ASR it started with, even if the default changed since (e.g. tiny mode off).
        saved_asr = (saved.get("provenance") or {}).get("asr_model")
        if "sim_encoder" not in (saved.get("config") or {}):  # a run from before SIM encoders: XTTS's, no MOS
            config = dataclasses.replace(config, sim_encoder="xtts", mos=())
        return cls(
            folder=folder,
            config=config,
            sentence_set=read_sentences(folder / "sentences.csv", config.sentences),
            systems=_saved_systems(planner, folder, saved),
            created=saved.get("created", utc_now()),
            references=saved.get("references", {}),
            asr_model=config.asr_model or saved_asr or planner.asr.default_model(),
            rows=read_results(folder / "results.csv"),
            planner=planner,
            **kw,
        )

    def _asr_options(self) -> dict[str, Any]:
        """Per language: Whisper is told it, or detects it when it does not know it (recorded in ``asr_languages``)."""
        from engines.asr.engine import ASROptions
        from engines.asr.options import whisper_code

        beam = self.config.beam_size
        return {
            lang: ASROptions(language=whisper_code(lang), beam_size=beam, temperature=0.0, pack=self.config.asr_pack)
            for lang in self.sentence_set.languages
        }

    def _provenance(self) -> dict[str, Any]:
        from engines.core.device import gpu_memory, resolve_device

        device = resolve_device(self.settings.device)
        models = {}
        for s in self.systems:
            if s.model_id in models:
                continue
            try:
                folder = self.tts.model_dir(s.model_id)
            except LabError:
                folder = None
            info: dict[str, Any] = {"dir": str(folder) if folder else None}
            if folder is not None and (folder / "model.pth").is_file():
                stat = (folder / "model.pth").stat()
                info.update(
                    {
                        "model_pth_bytes": stat.st_size,
                        "model_pth_mtime": datetime.fromtimestamp(stat.st_mtime).isoformat(timespec="seconds"),
                    }
                )
            models[s.model_id] = info
        return {
            "versions": library_versions(),
            "device": device,
            "gpu": gpu_memory(device),
            "platform": sys.platform,
            "tts_models": models,
            "asr_model": self.asr_model,
            "speaker_encoder": self.quality.encoder_label(),
            "normalizers": {lang: metrics.normalizer_name(lang) for lang in XTTS_LANGUAGES},
            "tiny_models_setting": self.settings.tiny_models,
        }

    def _metrics_models(self) -> dict[str, Any]:
        """Which model computed each metric, with versions and weight hashes (the report's provenance)."""
        asr = {**self.asr.provenance(self.asr_model), "weights": self.asr_weights}
        return {"asr": asr, **self.quality.models()}

    # ------------------------------------------------------------------ the loop

    @property
    def done(self) -> int:
        return len(self.rows)

    def _status(self, state: str, message: str = "") -> RunProgress:
        return write_status(self.folder, state, self.done, self.total, message)

    def _order(self, row: dict[str, Any]) -> tuple[int, int, int]:
        """The sequential loop's order: ground truth, then system by system, sentence by sentence, repeat."""
        systems = self._system_rank
        return (
            systems.get(row["system"], len(systems)),
            self._sentence_rank.get(row["sentence_id"], len(self._sentence_rank)),
            int(row["repeat"] or 0),
        )

    def _commit(self, new_rows: list[dict[str, Any]]) -> None:
        """Keep finished rows (results.csv rewritten atomically), in the sequential loop's order whatever order
        they finished in (pipelined, or on Ray workers): the same run gives the same file."""
        self.rows.extend(new_rows)
        self.rows.sort(key=self._order)
        self.done_keys.update(r["key"] for r in new_rows)
        write_results(self.results_path, self.rows)

    def _outputs(self, state: str) -> dict[str, Any]:
        loaded: dict[str, Any] = getattr(self.asr, "model_info", dict)()  # backend, compute type, device
        if loaded:
            self.meta["metrics"]["asr"].update(loaded)
        rows = fill_weights(self.meta, self.rows, self.planner.tts_weights, self.planner.asr_weights)
        return write_outputs(self.folder, self.meta, rows, self.config, state)

    def _tick(self, desc: str) -> None:
        self.progress(self.done / max(self.total, 1), desc=desc)

    def steps(self) -> Iterator[RunProgress]:
        """Run to the end (or until the stop event), yielding progress after every batch.

        Yields:
            RunProgress; the last one has state "done" (or "stopped") and the summary.
        """
        write_json(self.folder / "config.json", self.meta)
        if self.rows:
            self.log_fn(f"Resuming {self.run_id}: {self.done} of {self.total} utterances already done.")
        try:
            yield self._status("running", "starting")
            for name, found in self.folders.items():
                if found.notice(name):
                    self.log_fn(found.notice(name))
            units = self.work_units()
            if self.config.executor == "ray":
                if self.remote is None:
                    raise LabError("This run was opened without a Ray executor (EvalEngine provides one).")
                yield from self.remote(self, units)
            elif self.config.pipeline:
                yield from self._pipelined(units)
            else:
                yield from self._sequential(units)
        except GeneratorExit:
            # The caller stopped reading (a script left its loop): the batch in flight is lost, what was
            # committed is kept; say so instead of leaving "running" behind.
            self._status("stopped", "the caller stopped reading the progress; resume to finish")
            if self.rows:
                self._outputs("stopped")
            raise
        except Exception as exc:
            self._status("failed", f"{type(exc).__name__}: {exc}")
            if self.rows:
                self._outputs("failed")
            raise
        finished = self.done >= self.total
        state = "done" if finished else "stopped"
        if not finished:
            self.log_fn(f"Stopped {self.run_id} after {self.done} of {self.total} utterances; resume it to finish.")
        summary = self._outputs(state)
        final = self._status(state, "finished" if finished else "stopped by the user")
        final.summary = summary
        self.progress(1.0, desc="Done" if finished else "Stopped")
        yield final

    # ------------------------------------------------------------------ work units

    def work_units(self) -> list[WorkUnit]:
        """What is left to do, as the batches the sequential loop runs: the ground truth first, then each system
        in order (checkpoint-major when ranking checkpoints), ``asr_batch_size`` takes per unit. The pipeline and
        Ray workers run these same units, so every way of running decodes the same batches."""
        size = self.config.asr_batch_size
        units: list[WorkUnit] = []

        def add(system: str, items: list[tuple[str, int]]) -> None:
            for start in range(0, len(items), size):
                units.append(WorkUnit(len(units), system, tuple(items[start : start + size])))

        add(GROUND_TRUTH, [(s.id, 0) for s in self.gt_work if f"{GROUND_TRUTH}|{s.id}|0" not in self.done_keys])
        for system in self.systems:
            folder = self.folders.get(system.name)
            add(
                system.name,
                [
                    (se.id, rep)
                    for se in self.sentence_set.sentences
                    for rep in (range(1) if folder else range(self.config.repeats))
                    if f"{system.name}|{se.id}|{rep}" not in self.done_keys
                    and (folder is None or se.id in folder.files)
                ],
            )
        return units

    def system(self, name: str) -> System | None:
        """The system of a unit (None for the ground truth)."""
        return None if name == GROUND_TRUTH else next(s for s in self.systems if s.name == name)

    def produce(self, unit: WorkUnit) -> list[dict[str, Any]]:
        """The unit's audio: synthesized (TTS systems, after one warm-up per system), read from an audio folder,
        or the real recordings. Stops between takes when the stop event is set (the takes so far are returned)."""
        system = self.system(unit.system)
        sentences = {s.id: s for s in self.sentence_set.sentences}
        if system is not None and not system.external and system.name not in self._warmed:
            self._tick(f"{system.name}: warming up")
            self._warm_up(system, sentences[unit.items[0][0]])
            self._warmed.add(system.name)
        takes: list[Any] = []
        for sid, rep in unit.items:
            if self.stop_event.is_set():
                break
            sentence = sentences[sid]
            if system is None:
                self._tick(f"Ground truth: {sid} ({self.done + len(takes) + 1}/{self.total})")
                takes.append(self._recording(sentence))
            else:
                self._tick(f"{system.name}: {sid} ({self.done + len(takes) + 1}/{self.total})")
                if system.external:
                    takes.append(self._from_folder(system, sentence, self.folders[system.name].files[sid]))
                else:
                    takes.append(self._synthesize(system, sentence, rep))
        return takes

    def run_unit(self, unit: WorkUnit) -> list[dict[str, Any]]:
        """Produce and score one unit (what a Ray worker does), without committing it."""
        takes = self.produce(unit)
        return self.score(unit, takes) if takes else []

    def _sequential(self, units: list[WorkUnit]) -> Iterator[RunProgress]:
        current = None
        for unit in units:
            if self.stop_event.is_set():
                return
            if unit.system != current:
                current = unit.system
                left = sum(len(u.items) for u in units if u.system == current)
                self.log_fn(f"{current}: {left} utterance(s) to go.")
            takes = self.produce(unit)
            if takes:
                self._commit(self.score(unit, takes))
                yield self._status("running", f"{unit.system} {self.done}/{self.total}")

    def _pipelined(self, units: list[WorkUnit]) -> Iterator[RunProgress]:
        """Synthesis of the next unit overlaps the scoring (ASR, SIM, MOS) of the last: one unit in each stage
        (a bounded pipeline), committed in order, so results equal the sequential loop's.

        Where the ASR has its own lock (engines.core.locks: the CPU), Whisper decodes while XTTS generates; scoring
        draws no number from torch's shared generator (``score``), so every seeded synthesis sounds as it does
        sequentially. Where TTS and ASR share one lock (CUDA), what overlaps is the work outside it (DNSMOS, files).
        """
        from concurrent.futures import Future, ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-score") as pool:
            scoring: Future[list[dict[str, Any]]] | None = None
            try:
                for unit in units:
                    if self.stop_event.is_set():
                        break
                    takes = self.produce(unit)
                    if scoring is not None:
                        done, scoring = scoring, None
                        self._commit(done.result())
                        yield self._status("running", f"{unit.system} {self.done}/{self.total}")
                    if takes:
                        scoring = pool.submit(self.score, unit, takes)
            except Exception:
                # synthesis failed (out of memory, a bad model): the unit already scored is kept for the resume
                if scoring is not None and scoring.exception() is None:
                    self._commit(scoring.result())
                raise
            if scoring is not None:
                self._commit(scoring.result())
                yield self._status("running", f"{self.done}/{self.total}")

    # ------------------------------------------------------------------ steps

    def _warm_up(self, system: System, sentence: Sentence) -> None:
        """One uncounted synthesis: loads the model and caches the voice latents, so RTF measures generation.

        It speaks the first pending sentence (right language and script), capped to a few tokens.
        """
        options = self.config.tts_options(sentence.language, 0)
        self.tts.synthesize(
            sentence.text,
            model_id=system.model_id,
            reference=[Path(f) for f in system.voice.files] or None,
            speaker=system.voice.speaker,
            save=False,
            options=dataclasses.replace(options, max_audio_tokens=min(options.max_audio_tokens or 64, 64)),
        )

    def _synthesize(self, system: System, sentence: Sentence, rep: int) -> dict[str, Any]:
        options = self.config.tts_options(sentence.language, rep)
        checker = None
        if self.config.retakes:  # the retake mode: the run's own Whisper judges each sentence before it is kept
            from engines.tts.retakes import RetakeChecker, RetakeOptions

            checker = RetakeChecker.whisper(
                self.asr, RetakeOptions(takes=self.config.retakes, asr_model=self.asr_model)
            )
        result = self.tts.synthesize(
            sentence.text,
            model_id=system.model_id,
            reference=[Path(f) for f in system.voice.files] or None,
            speaker=system.voice.speaker,
            options=options,
            save=False,
            retakes=checker,
        )
        rel = f"audio/{system.slug}/{slug(sentence.id, 60)}_r{rep}.wav"
        save_wav(self.folder / rel, result.audio, result.sample_rate)
        return {
            "sentence": sentence,
            "repeat": rep,
            "audio": result.audio,
            "sr": result.sample_rate,
            "gen_seconds": result.gen_seconds,
            "audio_seconds": result.audio_seconds,
            "rtf": result.rtf,
            "seed": options.seed,
            "audio_file": rel,
            "notices": result.notices,
        }

    def _from_folder(self, system: System, sentence: Sentence, src: Path) -> dict[str, Any]:
        """A take of an audio-folder system: the file, not made here."""
        return self._copied_take(sentence, src, system.slug)

    def _transcribe(self, clips: list[np.ndarray], languages: list[str], labels: list[str]) -> list[Any]:
        """Batched Whisper per language (clips over 30 s fall back to sequential decoding inside the engine);
        ``labels`` name the clips in notices."""
        out: list[Any] = [None] * len(clips)
        by_lang: dict[str, list[int]] = {}
        for i, lang in enumerate(languages):
            by_lang.setdefault(lang, []).append(i)
        for lang, idx in by_lang.items():
            transcripts = self.asr.transcribe_batch(
                [clips[i] for i in idx],
                self.asr_options[lang],
                model_id=self.asr_model,
                batch_size=len(clips),
                sources=[labels[i] for i in idx],
            )
            for i, t in zip(idx, transcripts):
                out[i] = t
        return out

    def _recording(self, sentence: Sentence) -> dict[str, Any]:
        """A ground-truth take: the real recording."""
        return self._copied_take(sentence, Path(sentence.audio or ""), "ground-truth")

    def _copied_take(self, sentence: Sentence, src: Path, subfolder: str) -> dict[str, Any]:
        """A take read from a file, copied into the run's audio/<subfolder>/ (the report plays it)."""
        audio, sr = load_audio(src, max_mb=self.settings.max_upload_mb)
        rel = f"audio/{subfolder}/{slug(sentence.id, 60)}{src.suffix.lower() or '.wav'}"
        dst = self.folder / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return _take(sentence, audio, sr, rel)

    def score(self, unit: WorkUnit, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Transcribe a unit's takes (batched), then score each: WER/CER, flags, SIM, MOS.

        Its torch random calls (a model built on first use, Whisper's seeded fallback) draw from the thread's own
        generators, never torch's shared one: run beside a synthesis (pipelined), it leaves that stream alone."""
        from engines.core.rng import private_rng  # imports torch: not at import time

        with private_rng(self.config.seed):
            return self._score(unit, batch)

    def _score(self, unit: WorkUnit, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        system = self.system(unit.system)
        clips = [resample(b["audio"], b["sr"], ASR_SR) for b in batch]
        if system is None:
            labels = [f"recording {b['sentence'].id}" for b in batch]
        else:
            labels = [
                f"{system.name} / {b['sentence'].id}" + (f" r{b['repeat']}" if b.get("repeat") else "") for b in batch
            ]
        transcripts = self._transcribe(clips, [b["sentence"].language for b in batch], labels)
        reference = self.quality.reference(system)
        rows = []
        for b, t, clip, label in zip(batch, transcripts, clips, labels):
            quality = self.quality.score(b["audio"], b["sr"], clip, reference, system, label)
            rows.append(
                score_row(
                    system=unit.system,
                    model=system.model_label if system else "",
                    voice=system.voice.display if system else (b["sentence"].speaker or ""),
                    checkpoint=system.checkpoint if system else None,
                    sentence=b["sentence"],
                    repeat=b["repeat"],
                    transcript=t,
                    audio=b["audio"],
                    sr=b["sr"],
                    audio_file=b["audio_file"],
                    gen_seconds=b["gen_seconds"],
                    rtf=b["rtf"],
                    seed=b["seed"],
                    notices=b["notices"],
                    # real recordings: no TTS
                    weights=(self.tts_weights[system.name] if system else "", self.asr_weights),
                    quality=quality,
                )
            )
        return rows
