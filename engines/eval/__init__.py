"""Closed-loop evaluation: TTS -> ASR -> WER/CER, RTF and speaker similarity, with reports.

Runs without the UI::

    python -m engines.eval --config eval.json            # writes workspace/reports/<run-id>/
    python -m engines.eval --config eval.json --tiny-models --workspace /tmp/ws

or from Python::

    from config import load_settings
    from engines import Engines
    from engines.eval import EvalConfig
    eng = Engines.create(load_settings())
    config = EvalConfig(sentences="builtin:en", models=("xtts_v2",), voices=("me.wav",))
    run = eng.eval.run(config)        # in this thread, to the end
    print(run.folder / "report.html")

    job = eng.eval.start(config)      # or in a background thread, as the Eval tab does
    for state in job.watch():               # leaving this loop leaves the job running; stop() ends it
        print(state.state, state.desc)

Modules, each with one job: ``config`` (EvalConfig), ``sentences`` (sentence sets), ``plan`` (voices,
systems, every check before work), ``results`` (the typed results.csv row), ``runner`` (the loop),
``summary`` (numbers and report from rows), ``store`` (run folders), ``job`` (a run in a background thread
that outlives whoever watches it), ``checkpoints`` (ranking a training run), ``listening`` (blind tests),
``engine`` (the thin EvalEngine), ``__main__`` (the command).
"""

from engines.eval.config import EvalConfig
from engines.eval.engine import EvalEngine
from engines.eval.job import EvalJob, JobState
from engines.eval.plan import System, Voice
from engines.eval.results import GROUND_TRUTH, RANDOM, REAL, RESULT_COLUMNS, ResultRow, read_results, write_results
from engines.eval.sentences import Sentence, SentenceSet, load_sentences, sentence_set_choices
from engines.eval.store import RUN_STATES, RunInfo, RunProgress
from engines.eval.summary import paired_comparison, rank_systems, summarize

__all__ = [
    "GROUND_TRUTH",
    "RANDOM",
    "REAL",
    "RESULT_COLUMNS",
    "RUN_STATES",
    "EvalConfig",
    "EvalEngine",
    "EvalJob",
    "JobState",
    "ResultRow",
    "RunInfo",
    "RunProgress",
    "Sentence",
    "SentenceSet",
    "System",
    "Voice",
    "load_sentences",
    "paired_comparison",
    "rank_systems",
    "read_results",
    "sentence_set_choices",
    "summarize",
    "write_results",
]
