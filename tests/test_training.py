"""Training engine end to end on the tiny XTTS, on the CPU: real GPTTrainer runs in a background process.

The tiny model's losses measure plumbing (the optimizer and checkpoints work), not voice quality.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from engines.core.audio import load_audio, save_wav
from engines.core.errors import BusyError, InputError, MissingWeightsError
from engines.datasets.manifest import ClipEntry, write_dataset, write_metadata
from engines.training.engine import (
    PRESETS,
    TrainingEngine,
    TrainOptions,
    estimate_vram_gib,
    preset_options,
    read_metrics,
    read_run,
)
from tests.conftest import ENGLISH_SENTENCES, transcribed_clips

# Plain words only: the tiny tokenizer knows few characters (the worker drops clips with unknown ones).
ESPEAK_SENTENCES = ENGLISH_SENTENCES  # other test modules import this name


def make_dataset(
    datasets_dir: Path, name: str, clips: list[tuple[Path, str]], n_eval: int = 2, language: str = "en"
) -> Path:
    """A coqui-format dataset (22.05 kHz mono wavs, metadata_train/eval.csv, dataset.json); the two
    shortest clips go to evaluation, so evaluation is quick."""
    folder = datasets_dir / name
    (folder / "wavs").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (src, text) in enumerate(clips):
        audio, sr = load_audio(src, sr=22050)
        wav = folder / "wavs" / f"clip{i:03d}.wav"
        save_wav(wav, audio, sr)
        entries.append((len(audio) / sr, f"wavs/{wav.name}", text))
    by_length = sorted(entries)
    evals, train = by_length[:n_eval], [e for e in entries if e not in by_length[:n_eval]]
    return write_dataset(
        folder,
        language,
        [ClipEntry(a, t, "speaker") for _, a, t in train],
        [ClipEntry(a, t, "speaker") for _, a, t in evals],
    )


def make_settings(root: Path, tiny_models):
    """Tiny mode, CPU, a fresh workspace under ``root`` (tiny models linked in), an empty XTTS cache."""
    from config import load_settings

    workspace = root / "workspace"
    (workspace / "tiny-models").mkdir(parents=True, exist_ok=True)
    for item in (tiny_models.xtts_dir, tiny_models.whisper_path):
        link = workspace / "tiny-models" / item.name
        if not link.exists():
            link.symlink_to(item, target_is_directory=item.is_dir())
    return load_settings(
        {
            "workspace": workspace,
            "datasets_dir": root / "datasets",
            "tiny_models": True,
            "device": "cpu",
            "xtts_cache_dir": root / "xtts-cache",
        },
        env={},
    )


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_done(engine: TrainingEngine, run_id: str, timeout: float = 400.0):
    st = wait_for(lambda: (s := engine.status(run_id)).status != "running" and s, timeout, f"run {run_id} to end", 1.0)
    return st


def get_trained_run(request: pytest.FixtureRequest, tmp_path_factory, tiny_models) -> dict:
    """Train 3 epochs once per test session (6 clips, 2 for eval, batch 2) and probe the busy checks while it
    runs. Kept on pytest's config object, so this module and the page tests share it (training is the slow part)."""
    cached = getattr(request.config, "_xtts_lab_trained_run", None)
    if cached is not None:
        return cached
    root = tmp_path_factory.mktemp("trained")
    settings = make_settings(root, tiny_models)
    make_dataset(settings.path("datasets_dir"), "voice", transcribed_clips(request))
    engine = TrainingEngine(settings, tiny=tiny_models)
    options = TrainOptions(
        dataset="voice",
        base_model="tiny",
        epochs=3,
        batch_size=2,
        grad_accum=1,
        learning_rate=5e-4,
        save_every=2,
        seed=1,
        keep_checkpoints=3,
    )
    run_id = engine.start(options)
    probes: dict[str, object] = {"in_use_running": engine.in_use("voice"), "active": engine.active_run()}
    restarted = TrainingEngine(settings, tiny=tiny_models)  # another app session: it knows only run.json + pid
    probes["restarted_sees"] = restarted.active_run()
    for name, call in (
        ("second_start", lambda: engine.start(options)),
        ("delete", lambda: engine.delete_run(run_id)),
        ("restarted_start", lambda: restarted.start(options)),
    ):
        try:
            call()
            probes[name] = None
        except Exception as exc:  # noqa: BLE001 - the test asserts on what was raised
            probes[name] = exc
    status = wait_done(engine, run_id)
    trained = {
        "settings": settings,
        "engine": engine,
        "run_id": run_id,
        "status": status,
        "options": options,
        "probes": probes,
    }
    request.config._xtts_lab_trained_run = trained
    return trained


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory, tiny_models):
    return get_trained_run(request, tmp_path_factory, tiny_models)


@pytest.fixture()
def engine(tmp_path, tiny_models) -> TrainingEngine:
    return TrainingEngine(make_settings(tmp_path, tiny_models), tiny=tiny_models)


# ---------------------------------------------------------------- options, presets, estimates


def test_presets_fill_every_setting_and_validate(engine, tmp_path):
    for name in PRESETS:
        opts = preset_options(name, dataset="x", base_model="tiny")
        assert opts.dataset == "x" and opts.base_model == "tiny" and opts.batch_size >= 1
    with pytest.raises(InputError, match="quick, standard, thorough"):
        preset_options("huge")
    # More clips per batch or longer clips need more memory; accumulation is free.
    assert estimate_vram_gib(4) > estimate_vram_gib(2) > estimate_vram_gib(1)
    assert estimate_vram_gib(2, 6.0) < estimate_vram_gib(2, 11.0)
    assert 8 < estimate_vram_gib(1) < 14  # XTTS v2's 441 M trainable parameters alone are ~7 GB in fp32 AdamW
    assert engine.suggest_batch_size("cpu") is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_size": 0}, "batch size"),
        ({"epochs": 0}, "epochs"),
        ({"grad_accum": 0}, "gradient accumulation"),
        ({"learning_rate": 0.0}, "learning rate"),
        ({"max_audio_seconds": 0.5}, "max audio"),
        ({"eval_every": 0}, "eval-every"),
        ({"dataset": "../x"}, "Invalid dataset name"),
        ({"dataset": "/tmp/x"}, "Invalid dataset name"),
        ({"dataset": "missing"}, "not found"),
        ({"max_audio_seconds": 30.0}, "more than this base model's GPT holds"),
    ],
)
def test_bad_options_are_refused_before_spawning(engine, change, message, speak):
    make_dataset(engine.datasets_dir, "ok", [(speak(t), t) for t in ESPEAK_SENTENCES[:3]], n_eval=1)
    options = TrainOptions(**{**{"dataset": "ok", "base_model": "tiny"}, **change})
    with pytest.raises(InputError, match=message):
        engine.start(options)
    assert engine.list_runs() == []


def test_dataset_without_clips_is_refused(engine):
    folder = engine.datasets_dir / "empty"
    folder.mkdir(parents=True)
    write_dataset(folder, "en", [], [])
    with pytest.raises(InputError, match="no clips"):
        engine.start(TrainOptions(dataset="empty", base_model="tiny"))
    # Rows pointing at missing audio do not count as clips either.
    write_metadata(folder, "train", [ClipEntry("wavs/gone.wav", "hello", "s")])
    with pytest.raises(InputError, match="no clips"):
        engine.start(TrainOptions(dataset="empty", base_model="tiny"))
    assert engine.list_runs() == []


def test_dataset_language_must_be_a_language_code(engine, speak):
    make_dataset(
        engine.datasets_dir, "klingon", [(speak(t), t) for t in ESPEAK_SENTENCES[:3]], n_eval=1, language="klingon"
    )
    with pytest.raises(InputError, match="no valid language"):
        engine.start(TrainOptions(dataset="klingon", base_model="tiny"))
    assert engine.list_runs() == []


def test_missing_base_weights_name_the_folder_and_files(engine, speak):
    make_dataset(engine.datasets_dir, "ok", [(speak(t), t) for t in ESPEAK_SENTENCES[:3]], n_eval=1)
    with pytest.raises(MissingWeightsError) as info:
        engine.start(TrainOptions(dataset="ok", base_model="xtts_v2"))
    message = str(info.value)
    assert "xtts-cache" in message  # nothing downloaded at all: every file is named
    assert "lacks model.pth, config.json, vocab.json, dvae.pth, mel_stats.pth (" in message
    # A downloaded XTTS v2 without the training assets: the message names exactly those.
    cache = engine.settings.path("xtts_cache_dir")
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("model.pth", "config.json", "vocab.json", "speakers_xtts.pth"):
        (cache / name).write_bytes(b"x")
    with pytest.raises(MissingWeightsError) as info:
        engine.resolve_base("xtts_v2")
    assert f"{cache} lacks dvae.pth, mel_stats.pth (" in str(info.value)
    # A fine-tuned model folder lacking its weights cannot be a base either.
    (engine.models_dir / "half").mkdir()
    with pytest.raises(MissingWeightsError, match="model.pth"):
        engine.resolve_base("half")
    with pytest.raises(InputError, match="tiny-model mode"):
        TrainingEngine(dataclasses.replace(engine.settings, tiny_models=False)).resolve_base("tiny")


def test_oom_failure_tells_what_to_lower():
    from engines.training.worker import describe_failure

    options = TrainOptions(batch_size=4, max_audio_seconds=11.0)
    message = describe_failure(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), options)
    assert "batch size 4" in message and "gradient accumulation" in message and "max audio" in message
    assert "e.g. to 2" in message
    assert describe_failure(RuntimeError("shape mismatch"), options).startswith("RuntimeError: shape mismatch")


# ---------------------------------------------------------------- one real run


@pytest.mark.slow
def test_training_run_finishes_with_falling_loss(trained):
    engine, run_id, st = trained["engine"], trained["run_id"], trained["status"]
    assert st.status == "finished", st.log_tail
    run_dir = engine.run_dir(run_id)
    for name in ("run.json", "metrics.jsonl", "config.json", "train.log"):
        assert (run_dir / name).is_file(), name
    info = read_run(run_dir)
    assert info["total_steps"] == info["steps_per_epoch"] * 3 == st.step == st.total_steps
    assert info["pid"] and info["error"] is None and info["base_model"] == "tiny" and info["language"] == "en"

    frame = engine.metrics(run_id)
    train = frame[frame.kind == "train"]
    evals = frame[frame.kind == "eval"]
    assert list(train.step) == list(range(1, st.step + 1))  # one line per optimizer step, none missing
    assert set(train.epoch) == {1, 2, 3} and len(evals) == 3  # one evaluation per epoch end
    assert train[["loss", "loss_text_ce", "loss_mel_ce", "lr"]].notna().all().all()
    first, last = train[train.epoch == 1].loss.mean(), train[train.epoch == 3].loss.mean()
    assert last < first, f"train loss did not fall: epoch 1 mean {first:.4f}, epoch 3 mean {last:.4f}"
    assert evals.loss.iloc[-1] < evals.loss.iloc[0], "eval loss did not fall over 3 epochs"
    assert st.best_eval_loss == pytest.approx(evals.loss.min())
    assert st.eta_seconds is None and st.gpu_memory_gib is None and st.elapsed_seconds > 0

    files = engine.checkpoints(run_id)
    assert files and files[-1].name == f"checkpoint_{st.step}.pth"
    assert len(files) <= 4  # keep_checkpoints=3 plus, at most, the best-eval one
    for path in files:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["model"] and all(k.startswith("xtts.gpt.") for k in ckpt["model"])
        assert ckpt["optimizer"] and ckpt["step"] == int(path.stem.split("_")[1])
    assert engine.best_checkpoint(run_id).name == f"checkpoint_{int(evals.loc[evals.loss.idxmin(), 'step'])}.pth"

    rows = engine.list_runs()
    assert [r.run_id for r in rows] == [run_id]
    assert rows[0].status == "finished" and rows[0].dataset == "voice" and "batch 2" in rows[0].settings
    assert engine.latest_run() == run_id and engine.active_run() is None


def test_second_start_and_delete_are_refused_while_running(trained):
    probes, run_id = trained["probes"], trained["run_id"]
    assert probes["active"] == run_id and probes["in_use_running"] is True
    assert isinstance(probes["second_start"], BusyError) and run_id in str(probes["second_start"])
    assert isinstance(probes["delete"], BusyError)
    assert probes["restarted_sees"] == run_id and isinstance(probes["restarted_start"], BusyError)
    engine = trained["engine"]
    assert engine.in_use("voice") is False  # finished: the dataset may go now
    assert len(engine.list_runs()) == 1  # the refused start left no folder behind


def test_finished_run_cannot_resume_or_stop(trained):
    engine, run_id = trained["engine"], trained["run_id"]
    with pytest.raises(InputError, match="finished"):
        engine.resume(run_id)
    with pytest.raises(InputError, match="not running"):
        engine.stop(run_id)
    with pytest.raises(InputError, match="Invalid run name"):
        engine.status("../etc")


@pytest.mark.slow
def test_export_loads_strictly_and_synthesizes(trained, tiny_models):
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    engine, run_id = trained["engine"], trained["run_id"]
    out = engine.export(run_id, name="voice-export")
    assert out == engine.models_dir / "voice-export"
    assert {"config.json", "model.pth", "vocab.json", "speakers_xtts.pth", "reference.wav", "export.json"} <= {
        p.name for p in out.iterdir()
    }
    meta = json.loads((out / "export.json").read_text())
    best = engine.best_checkpoint(run_id)
    assert meta["run"] == run_id and meta["checkpoint"] == best.name and meta["eval_loss"] is not None

    state = torch.load(out / "model.pth", map_location="cpu", weights_only=True)
    assert set(state) == {"model"}  # no optimizer state
    keys = state["model"].keys()
    assert not any(k.startswith(("xtts.", "dvae.", "torch_mel_spectrogram")) for k in keys)
    trained_gpt = torch.load(best, map_location="cpu", weights_only=True)["model"]
    base = torch.load(tiny_models.xtts_dir / "model.pth", map_location="cpu", weights_only=True)["model"]
    key = "gpt.text_head.weight"
    assert torch.equal(state["model"][key], trained_gpt["xtts." + key])  # the fine-tuned GPT...
    assert not torch.equal(state["model"][key], base[key])  # ...not the base's
    assert torch.equal(
        state["model"]["hifigan_decoder.waveform_decoder.conv_pre.weight"],
        base["hifigan_decoder.waveform_decoder.conv_pre.weight"],
    )  # frozen parts from the base

    config = XttsConfig()
    config.load_json(str(out / "config.json"))
    model = Xtts(config)
    model.load_checkpoint(config, checkpoint_dir=str(out), strict=True, eval=True)

    try:
        from engines.tts.engine import TTSEngine, TTSOptions
    except ImportError:  # the TTS engine not there yet: synthesize directly
        latent, speaker = model.get_conditioning_latents(audio_path=[str(out / "reference.wav")])
        wav = model.inference("hello there.", "en", latent, speaker, max_new_tokens=20)["wav"]
        assert len(wav) > 0
    else:
        import threading

        tts = TTSEngine(trained["settings"], threading.RLock(), tiny=tiny_models)
        assert "voice-export" in [mid for _, mid in tts.list_models()]
        result = tts.synthesize(
            "Hello there.", model_id="voice-export", options=TTSOptions(max_audio_tokens=20), save=False
        )
        assert result.audio.size > 0 and result.sample_rate == 24000
        tts.unload()

    # An explicit checkpoint, another parent folder (the eval engine's way), and bad names.
    first = engine.checkpoints(run_id)[0]
    other = engine.export(run_id, first, "early", dest_dir=trained["settings"].workspace_dir / "eval-models")
    assert json.loads((other / "export.json").read_text())["checkpoint"] == first.name
    with pytest.raises(InputError, match="already exists"):
        engine.export(run_id, name="voice-export")
    for bad in ("../x", "/tmp/x", "a/b"):
        with pytest.raises(InputError, match="Invalid model name"):
            engine.export(run_id, name=bad)
    with pytest.raises(InputError, match="not a checkpoint"):
        engine.export(run_id, Path("/etc/passwd"), name="nope")
    assert not any(p.name.endswith(".tmp") for p in engine.models_dir.iterdir())  # no half-written folders


# ---------------------------------------------------------------- faults: kill, resume, stop


def test_metrics_keep_one_line_per_step(tmp_path):
    """Killed at step 3 with the last checkpoint at step 2 (and a line cut short): the resume trains step 3
    again. The worker drops the first step-3 line and the broken one before it appends; a reader keeps
    the last line of any step logged twice all the same."""
    from engines.training.runs import METRICS_FILE, trim_metrics

    path = tmp_path / METRICS_FILE
    session1 = [
        {"session": 1, "kind": "train", "step": 1, "loss": 6.0},
        {"session": 1, "kind": "train", "step": 2, "loss": 5.5},
        {"session": 1, "kind": "eval", "step": 2, "loss": 5.8},
        {"session": 1, "kind": "train", "step": 3, "loss": 5.0},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in session1) + '{"session": 1, "kind": "tr', encoding="utf-8")
    replayed = {"session": 2, "kind": "train", "step": 3, "loss": 5.1}

    older = path.read_text(encoding="utf-8") + "\n" + json.dumps(replayed) + "\n"  # a file from before the fix
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / METRICS_FILE).write_text(older, encoding="utf-8")
    rows = read_metrics(tmp_path / "old")
    assert [(r["kind"], r["step"], r["session"]) for r in rows] == [
        ("train", 1, 1),
        ("train", 2, 1),
        ("eval", 2, 1),
        ("train", 3, 2),
    ]

    assert trim_metrics(tmp_path, 2) == 1  # resuming from checkpoint_2
    with open(path, "a", encoding="utf-8") as fh:  # the resumed worker appends
        fh.write(json.dumps(replayed) + "\n")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]  # every line parses
    assert [(r["kind"], r["step"], r["session"]) for r in lines] == [
        ("train", 1, 1),
        ("train", 2, 1),
        ("eval", 2, 1),
        ("train", 3, 2),
    ]
    assert trim_metrics(tmp_path, 3) == 0 and path.read_text(encoding="utf-8").count("\n") == 4  # nothing to drop
    assert trim_metrics(tmp_path, 0) == 4 and read_metrics(tmp_path) == []  # no checkpoint: training starts over


@pytest.mark.slow
def test_kill_mid_epoch_then_stop_then_resume(engine, request, speak):
    """SIGKILL mid-epoch -> crashed -> resume continues the step count from the last checkpoint;
    stop() -> stopped with a checkpoint -> resume; the run finishes with exactly the planned steps."""
    make_dataset(engine.datasets_dir, "faults", transcribed_clips(request))
    options = TrainOptions(
        dataset="faults",
        base_model="tiny",
        epochs=2,
        batch_size=1,
        learning_rate=5e-4,
        save_every=2,
        keep_checkpoints=10,
    )
    run_id = engine.start(options)
    run_dir = engine.run_dir(run_id)

    def train_steps(session: int | None = None) -> list[int]:
        return [
            r["step"]
            for r in read_metrics(run_dir)
            if r.get("kind") == "train" and (session is None or r.get("session") == session)
        ]

    # Kill right after step 3 (checkpoint_2 exists, the next is due at step 4): step 3's work is lost.
    wait_for(lambda: 3 in train_steps(), 300, "step 3", interval=0.1)
    info = read_run(run_dir)
    os.killpg(info["pid"], signal.SIGKILL)
    st = wait_for(lambda: (s := engine.status(run_id)).status == "crashed" and s, 20, "crash detection")
    assert st.resumable and engine.active_run() is None
    last_ckpt = engine.checkpoints(run_id)[-1]
    killed_at = max(train_steps())
    ckpt_step = torch.load(last_ckpt, map_location="cpu", weights_only=True)["step"]
    assert ckpt_step <= killed_at <= ckpt_step + 2, (ckpt_step, killed_at)
    for path in engine.checkpoints(run_id):  # none corrupted by the kill
        torch.load(path, map_location="cpu", weights_only=True)

    engine.resume(run_id)
    wait_for(lambda: len(train_steps(2)) >= 2, 300, "steps after resume", interval=0.2)
    assert train_steps(2)[0] == ckpt_step + 1  # the global step continues from the checkpoint
    assert read_run(run_dir)["resumed_from"] == last_ckpt.name

    stopped = engine.stop(run_id)
    assert stopped.status == "stopped" and stopped.resumable
    stop_step = max(train_steps(2))
    assert engine.checkpoints(run_id)[-1].name == f"checkpoint_{stop_step}.pth"  # saved on the way out

    engine.resume(run_id)
    st = wait_done(engine, run_id)
    assert st.status == "finished", st.log_tail
    total = read_run(run_dir)["total_steps"]
    assert train_steps(3)[0] == stop_step + 1 and max(train_steps()) == total == st.step
    frame = engine.metrics(run_id)
    train = frame[frame.kind == "train"]
    assert list(train.step) == list(range(1, total + 1))  # replayed steps replace the lost one; no gaps
    assert len(frame[frame.kind == "eval"]) == 2
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    keys = [(r["kind"], r["step"]) for r in lines]
    assert len(keys) == len(set(keys)), "a step logged twice in metrics.jsonl"  # the replayed step's first line went
    assert [r["step"] for r in lines if r["kind"] == "train"] == list(range(1, total + 1))
    for path in engine.checkpoints(run_id):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["step"] == int(path.stem.split("_")[1])
    info = read_run(run_dir)
    assert [r["after"] for r in info["resumes"]] == ["crashed", "stopped"] and info["sessions"] == 3
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # a save cut short by the kill is cleaned up

    engine.delete_run(run_id)
    assert not run_dir.exists() and engine.list_runs() == []


def test_a_worker_we_spawned_counts_as_running_before_it_is_recognisable(engine):
    """Right after Start the pid may not look like a training worker yet (e.g. before exec): the engine's own
    Popen handle decides, so a healthy run never shows CRASHED and a second Start is refused."""
    import subprocess
    import sys

    run_dir = engine.runs_dir / "20261202-000000-early"
    run_dir.mkdir(parents=True)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # not engines.training.worker
    try:
        (run_dir / "run.json").write_text(json.dumps({"id": run_dir.name, "status": "running", "pid": child.pid}))
        engine.processes.children[run_dir.name] = child
        assert engine.active_run() == run_dir.name
        assert engine.status(run_dir.name).status == "running"
        with pytest.raises(BusyError, match="still running"):
            engine.processes.refuse_if_busy()
    finally:
        child.kill()
        child.wait()
    assert engine.status(run_dir.name).status == "crashed"  # exited without finishing: crashed, as before
    assert engine.active_run() is None
