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
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from config import XTTS_LANGUAGES, Settings
from engines import metrics
from engines.audio import load_audio, resample, save_wav, write_json
from engines.errors import LabError
from engines.eval.config import EvalConfig
from engines.eval.plan import Planner, System, Voice
from engines.eval.results import GROUND_TRUTH, RANDOM, read_results, score_row, write_results
from engines.eval.sentences import Sentence, SentenceSet, read_sentences, write_sentences
from engines.eval.store import RunProgress, RunStore, write_status
from engines.eval.summary import fill_weights, write_outputs
from engines.names import slug
from engines.progress import LogFn, ProgressFn
from engines.provenance import git_commit, utc_now, versions

log = logging.getLogger(__name__)

ASR_SR = 16000
BATCH_MAX_SECONDS = 30.0  # Whisper's window: shorter clips are decoded in batches


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
    }


def _saved_systems(planner: Planner, folder: Path, saved: dict[str, Any]) -> list[System]:
    """The systems of a run as it recorded them (names unchanged; voices from the copies in refs/)."""
    refs = saved.get("references", {})
    systems = []
    for d in saved["systems"]:
        files = tuple(str(folder / rel) for rel in refs.get(d["voice"], []))
        speaker = d["voice_label"] if d["voice_kind"] == "speaker" else None
        voice = Voice(
            d["voice"],
            d["voice_kind"],
            d["voice_label"],
            files=files,
            speaker=speaker,
            display=d.get("voice_display") or d["voice_label"],
        )
        planner.model_languages(d["model_id"])  # the model must still be there
        systems.append(System(d["name"], d["slug"], d["model_id"], d["model_label"], voice, d.get("checkpoint")))
    return systems


def _copy_references(folder: Path, systems: list[System]) -> dict[str, list[str]]:
    """Copy the reference clips into the run (the report plays them; SIM is against them)."""
    out: dict[str, list[str]] = {}
    for s in systems:
        v = s.voice
        if v.spec in out:
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
        tts: Any,
        asr: Any,
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
    ) -> None:
        self.settings, self.tts, self.asr, self.planner = settings, tts, asr, planner
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
        # rows already finished (a resume keeps those whose audio is still there)
        self.done_keys = {r["key"] for r in rows if r["audio_file"] and (folder / r["audio_file"]).is_file()}
        self.rows = [r for r in rows if r["key"] in self.done_keys]
        self.gt_work = [s for s in sentence_set.sentences if s.audio] if config.ground_truth else []
        self.total = len(self.gt_work) + len(systems) * len(sentence_set.sentences) * config.repeats
        self.asr_weights = planner.asr_weights(asr_model)
        self.tts_weights = {s.name: planner.tts_weights(s.model_id) for s in systems}
        self.asr_options = self._asr_options()
        self.meta = {
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
        from engines.asr import ASROptions

        beam = self.config.beam_size
        return {
            lang: ASROptions(language=lang, beam_size=beam, temperature=0.0) for lang in self.sentence_set.languages
        }

    def _provenance(self) -> dict[str, Any]:
        from engines.device import gpu_memory, resolve_device

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
            "speaker_encoder": "XTTS v2 speaker encoder (ResNet H/ASP, 512-d) of each system's own model",
            "normalizers": {lang: metrics.normalizer_name(lang) for lang in XTTS_LANGUAGES},
            "tiny_models_setting": self.settings.tiny_models,
        }

    # ------------------------------------------------------------------ the loop

    @property
    def done(self) -> int:
        return len(self.rows)

    def _status(self, state: str, message: str = "") -> RunProgress:
        return write_status(self.folder, state, self.done, self.total, message)

    def _commit(self, new_rows: list[dict[str, Any]]) -> None:
        self.rows.extend(new_rows)
        self.done_keys.update(r["key"] for r in new_rows)
        write_results(self.results_path, self.rows)

    def _outputs(self, state: str) -> dict[str, Any]:
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
            yield from self._ground_truth()
            for system in self.systems:
                if self.stop_event.is_set():
                    break
                yield from self._system(system)
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

    def _ground_truth(self) -> Iterator[RunProgress]:
        pending = [s for s in self.gt_work if f"{GROUND_TRUTH}|{s.id}|0" not in self.done_keys]
        size = self.config.asr_batch_size
        for start in range(0, len(pending), size):
            if self.stop_event.is_set():
                return
            chunk = pending[start : start + size]
            self._tick(f"Ground truth: transcribing {len(chunk)} recording(s)")
            self._commit(self._score_ground_truth(chunk))
            yield self._status("running", f"ground truth {self.done}/{self.total}")

    def _system(self, system: System) -> Iterator[RunProgress]:
        pending = [
            (se, rep)
            for se in self.sentence_set.sentences
            for rep in range(self.config.repeats)
            if f"{system.name}|{se.id}|{rep}" not in self.done_keys
        ]
        if not pending:
            return
        self.log_fn(f"System {system.name}: {len(pending)} utterance(s) to go.")
        self._tick(f"{system.name}: warming up")
        self._warm_up(system, pending[0][0])
        ref_emb = self._reference_embedding(system)
        size = self.config.asr_batch_size
        for start in range(0, len(pending), size):
            if self.stop_event.is_set():
                return
            batch = []
            for sentence, rep in pending[start : start + size]:
                if self.stop_event.is_set():
                    break
                self._tick(f"{system.name}: {sentence.id} ({self.done + len(batch) + 1}/{self.total})")
                batch.append(self._synthesize(system, sentence, rep))
            if batch:
                self._commit(self._score_batch(batch, system, ref_emb))
                yield self._status("running", f"{system.name} {self.done}/{self.total}")

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

    def _reference_embedding(self, system: System) -> np.ndarray | None:
        """The reference voice's speaker embedding (mean over its clips), from this system's model."""
        if system.voice.kind == "speaker":
            model = self.tts.load(system.model_id)
            entry = model.speaker_manager.speakers.get(system.voice.speaker)
            if entry is None:
                return None
            emb = entry["speaker_embedding"].reshape(-1).float().cpu().numpy()
        else:
            embs = []
            for f in system.voice.files:
                try:
                    embs.append(self.tts.speaker_embedding(Path(f), model_id=system.model_id))
                except LabError as exc:
                    log.warning("No speaker embedding for %s: %s", f, exc)
            if not embs:
                return None
            emb = np.mean(embs, axis=0)
        norm = float(np.linalg.norm(emb))
        return emb / norm if norm > 0 else emb

    def _synthesize(self, system: System, sentence: Sentence, rep: int) -> dict[str, Any]:
        options = self.config.tts_options(sentence.language, rep)
        result = self.tts.synthesize(
            sentence.text,
            model_id=system.model_id,
            reference=[Path(f) for f in system.voice.files] or None,
            speaker=system.voice.speaker,
            options=options,
            save=False,
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

    def _score_ground_truth(self, chunk: list[Sentence]) -> list[dict[str, Any]]:
        clips, natives, files = [], [], []
        for s in chunk:
            src = Path(s.audio or "")
            audio, sr = load_audio(src, max_mb=self.settings.max_upload_mb)
            rel = f"audio/ground-truth/{slug(s.id, 60)}{src.suffix.lower() or '.wav'}"
            dst = self.folder / rel
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            clips.append(resample(audio, sr, ASR_SR))
            natives.append((audio, sr))
            files.append(rel)
        transcripts = self._transcribe(clips, [s.language for s in chunk], [f"recording {s.id}" for s in chunk])
        return [
            score_row(
                system=GROUND_TRUTH,
                model="",
                voice=s.speaker or "",
                checkpoint=None,
                sentence=s,
                repeat=0,
                transcript=t,
                audio=a,
                sr=sr,
                audio_file=f,
                gen_seconds=None,
                rtf=None,
                sim=None,
                sim_encoder="",
                seed=None,
                notices=[],
                weights=("", self.asr_weights),  # real recordings: no TTS
            )
            for s, t, (a, sr), f in zip(chunk, transcripts, natives, files)
        ]

    def _score_batch(self, batch: list[dict], system: System, ref_emb: np.ndarray | None) -> list[dict[str, Any]]:
        clips = [resample(b["audio"], b["sr"], ASR_SR) for b in batch]
        labels = [
            f"{system.name} / {b['sentence'].id}" + (f" r{b['repeat']}" if b.get("repeat") else "") for b in batch
        ]
        transcripts = self._transcribe(clips, [b["sentence"].language for b in batch], labels)
        rows = []
        encoder = f"xtts-speaker-encoder:{system.model_label}"
        for b, t in zip(batch, transcripts):
            sim = None
            if ref_emb is not None and b["audio_seconds"] > 0.2:
                try:
                    emb = self.tts.speaker_embedding(b["audio"], sr=b["sr"], model_id=system.model_id)
                    sim = metrics.cosine(ref_emb, emb)
                except LabError as exc:
                    log.warning("No SIM for %s: %s", b["audio_file"], exc)
            rows.append(
                score_row(
                    system=system.name,
                    model=system.model_label,
                    voice=system.voice.display,
                    checkpoint=system.checkpoint,
                    sentence=b["sentence"],
                    repeat=b["repeat"],
                    transcript=t,
                    audio=b["audio"],
                    sr=b["sr"],
                    audio_file=b["audio_file"],
                    gen_seconds=b["gen_seconds"],
                    rtf=b["rtf"],
                    sim=sim,
                    sim_encoder=encoder if sim is not None else "",
                    seed=b["seed"],
                    notices=b["notices"],
                    weights=(self.tts_weights[system.name], self.asr_weights),
                )
            )
        return rows
