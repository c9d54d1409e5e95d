"""Training datasets from raw recordings: decode, transcribe, cut, check, write coqui-format metadata.

``DatasetEngine`` runs from a script or a notebook without the UI::

    engine = DatasetEngine(load_settings(), asr_engine)
    report = engine.build("my-voice", [Path("recordings/")], "en")
    for row in engine.load_table("my-voice"):
        print(row.clip, row.duration, row.text, row.flags)

On disk (``settings.datasets_dir/<name>/``): ``wavs/*.wav`` (22.05 kHz mono PCM16),
``metadata_train.csv`` and ``metadata_eval.csv`` (coqui format ``audio_file|text|speaker_name``),
``dataset.json`` (language, sources with sha256, settings, per-file report, clip details) and
``.manifest/<sha256>.json``, one per finished source file, so a re-run (or a run after a crash)
skips what is done. Every file is written atomically.

Modules: ``options`` (DatasetOptions, guards, shared numbers), ``results`` (what calls return),
``ingest`` (inputs -> sources, zips, transcripts files), ``build`` (sources -> clips on disk),
``clips`` (per-clip transcription, flags, split), ``store`` (dataset.json and the CSVs),
``review`` (list, table edits, re-cut, validation), ``engine`` (``DatasetEngine``, the facade).
"""

from engines.datasets.clips import TRAINER_MIN_SECONDS, assign_split
from engines.datasets.engine import DatasetEngine, runs_using
from engines.datasets.ingest import (
    MAX_TRANSCRIPTS_MB,
    MAX_ZIP_ENTRIES,
    ZIP_EXPANSION,
    TranscriptRow,
    match_transcripts,
    parse_transcripts,
    speaker_column_rule,
)
from engines.datasets.options import (
    ASR_RATE,
    CER_THRESHOLD,
    FORMAT_VERSION,
    MIN_MINUTES,
    NO_INPUT,
    SAMPLE_RATE,
    SILENCE_FLOOR_DB,
    DatasetOptions,
    check_language,
    check_name,
    check_options,
)
from engines.datasets.results import (
    DROP_REASONS,
    ClipRow,
    DatasetReport,
    DatasetStats,
    DatasetSummary,
    DroppedRow,
    FileReport,
    Mismatch,
    SaveResult,
    ValidationReport,
)
from engines.datasets.review import CHOICES

__all__ = [
    "ASR_RATE",
    "CER_THRESHOLD",
    "CHOICES",
    "DROP_REASONS",
    "FORMAT_VERSION",
    "MAX_TRANSCRIPTS_MB",
    "MAX_ZIP_ENTRIES",
    "MIN_MINUTES",
    "NO_INPUT",
    "SAMPLE_RATE",
    "SILENCE_FLOOR_DB",
    "TRAINER_MIN_SECONDS",
    "ZIP_EXPANSION",
    "ClipRow",
    "DatasetEngine",
    "DatasetOptions",
    "DatasetReport",
    "DatasetStats",
    "DatasetSummary",
    "DroppedRow",
    "FileReport",
    "Mismatch",
    "SaveResult",
    "TranscriptRow",
    "ValidationReport",
    "assign_split",
    "check_language",
    "check_name",
    "check_options",
    "match_transcripts",
    "parse_transcripts",
    "runs_using",
    "speaker_column_rule",
]
