"""Build options, their guards and the numbers the whole dataset package shares."""

from __future__ import annotations

from dataclasses import dataclass

from engines.core.errors import InputError
from engines.core.names import check_name as _check_folder_name
from engines.core.names import speech_language
from engines.datasets import screening

SAMPLE_RATE = 22050  # XTTS trains on 22.05 kHz audio
ASR_RATE = 16000  # Whisper's input rate
FORMAT_VERSION = 2  # bump when the processing changes, so finished files are redone (2: VAD cuts, per-clip ASR)
MIN_MINUTES = 2.0  # under this much speech a fine-tune learns little: warn
NO_INPUT = "No input files: upload audio files (WAV, MP3, FLAC, OGG, M4A) or a zip of them, or give a server folder."
# Mismatch threshold, measured with the real Whisper tiny.en (tests/test_datasets_real.py): clean clips
# re-transcribe at CER <= 0.042 against LJSpeech's human transcripts and <= 0.063 against the known text
# of Piper readings; one wrong word in ten (the real mismatch) is CER ~0.19. 0.12 sits between
# the two with room on both sides (bigger Whisper models err less, so it only gets safer). A short clip
# with one misheard word can still cross it: a flag to review, never a deletion.
CER_THRESHOLD = 0.12
SILENCE_FLOOR_DB = -70.0  # default silence_db: under it a file is digital silence or dither


@dataclass(frozen=True)
class DatasetOptions:
    """How recordings become clips (defaults follow XTTS fine-tuning practice)."""

    model_id: str | None = None  # Whisper model for files without a transcript (None = the ASR default)
    min_clip: float = 1.0  # seconds; shorter cut clips are dropped
    max_clip: float = 11.0  # seconds, padding included; longer segments are split at pauses
    silence_db: float = SILENCE_FLOOR_DB  # RMS dBFS floor: quieter files are silent; above it the VAD decides
    pad_ms: int = 150  # context kept before and after the speech of each clip
    eval_share: float = 0.15  # share of each speaker's clips held out for evaluation
    speaker: str = ""  # speaker name for the speaker column ("" = the dataset name)
    speaker_from_folder: bool = False  # a source folder's (or zip's) subfolder name is the speaker
    speakers: tuple[tuple[str, str], ...] = ()  # (source name, speaker) pairs: per-upload speakers
    max_clipped: float = 0.001  # share of full-scale samples above which a clip counts as clipped
    trainer_max_seconds: float = 11.0  # the trainer's max audio length: longer clips are flagged
    trainer_max_text: int = 200  # the trainer's max text length: longer texts are flagged
    cer_threshold: float = CER_THRESHOLD  # validation: a re-transcription further than this is a mismatch
    overwrite: bool = False  # replace an existing dataset of this name
    seed: int = 1234  # eval split
    # ----- speaker and quality screening (engines.datasets.screening) -----
    screen: bool = True  # score every clip (speaker similarity, DNSMOS, speaking rate, language) and decide
    target: str = "dominant"  # "dominant" voice of each speaker name, "reference" clips' voice, or "all" (clusters)
    reference_clips: tuple[str, ...] = ()  # audio files of the target speaker (target "reference")
    min_similarity: float = screening.SIM_THRESHOLD  # Resemblyzer cosine to the target; under it: another speaker
    min_bak: float = screening.MIN_BAK  # DNSMOS background score; under it: noise or music
    min_sig: float = screening.MIN_SIG  # DNSMOS speech score; under it: distorted
    min_ovrl: float = screening.MIN_OVRL  # DNSMOS overall score
    dnsmos_min_seconds: float = screening.DNSMOS_MIN_SECONDS  # shorter clips: DNSMOS only flags, never drops
    cps_ratio: float = screening.CPS_RATIO  # chars/s further than this factor from the median: misaligned text
    quality_action: str = "drop"  # "drop" (restorable in review) or "flag" clips under the quality thresholds
    check_clip_language: bool = True  # a multilingual Whisper detects each clip's language (English-only: off)


def check_name(name: str) -> str:
    """Validate a dataset name (``engines.core.names.check_name``)."""
    return _check_folder_name(name, "dataset")


def check_language(language: str) -> str:
    """The dataset language: one of XTTS's 17, or any ISO 639 code for a language to teach it (issue 21;
    ``engines.core.names.speech_language``). Whisper must know it unless a transcripts file gives every text
    (the builder checks that once it knows which files Whisper would hear)."""
    return speech_language(language)


def check_options(options: DatasetOptions) -> DatasetOptions:
    """Validate build options at the boundary.

    Raises:
        InputError: what is wrong and what is allowed.
    """
    o = options
    if not 0.3 <= o.min_clip < o.max_clip:
        raise InputError(f"Min clip must be at least 0.3 s and below max clip (got {o.min_clip:g} / {o.max_clip:g} s).")
    if not 1.0 <= o.max_clip <= 30.0:
        raise InputError(f"Max clip must be between 1 and 30 s (got {o.max_clip:g}).")
    if not -100.0 <= o.silence_db <= 0.0:
        raise InputError(f"Silence floor must be between -100 and 0 dBFS (got {o.silence_db:g}).")
    if not 0 <= o.pad_ms <= 1000:
        raise InputError(f"Padding must be between 0 and 1000 ms (got {o.pad_ms}).")
    if not 0.0 < o.eval_share <= 0.5:
        raise InputError(f"Eval share must be above 0 and at most 0.5 (got {o.eval_share:g}).")
    if not 0.0 <= o.max_clipped <= 1.0:
        raise InputError(f"Max clipped share must be between 0 and 1 (got {o.max_clipped:g}).")
    if o.trainer_max_seconds <= 0 or o.trainer_max_text <= 0:
        raise InputError("The trainer limits (max audio seconds, max text length) must be positive.")
    if not 0.0 < o.cer_threshold <= 1.0:
        raise InputError(f"The mismatch threshold (CER) must be above 0 and at most 1 (got {o.cer_threshold:g}).")
    if o.target not in screening.TARGETS:
        raise InputError(f"Target speaker must be one of {', '.join(screening.TARGETS)} (got {o.target!r}).")
    if o.target == "reference" and not o.reference_clips:
        raise InputError("Target 'reference' needs one or more reference clips of the target speaker.")
    if o.quality_action not in screening.QUALITY_ACTIONS:
        raise InputError(f"Quality action must be 'drop' or 'flag' (got {o.quality_action!r}).")
    if not 0.0 <= o.min_similarity < 1.0:
        raise InputError(f"Min speaker similarity must be between 0 and 1 (got {o.min_similarity:g}).")
    for label, v in (("BAK", o.min_bak), ("SIG", o.min_sig), ("OVRL", o.min_ovrl)):
        if not 1.0 <= v <= 5.0:
            raise InputError(f"Min DNSMOS {label} must be between 1 and 5 (got {v:g}).")
    if not 0.0 <= o.dnsmos_min_seconds <= 30.0:
        raise InputError(f"The DNSMOS minimum clip length must be between 0 and 30 s (got {o.dnsmos_min_seconds:g}).")
    if o.cps_ratio <= 1.0:
        raise InputError(f"The speaking-rate factor must be above 1 (got {o.cps_ratio:g}).")
    for value in [o.speaker, *(s for pair in o.speakers for s in pair)]:
        if "|" in value or "\n" in value:
            raise InputError(f"Speaker names cannot contain '|' or line breaks: {value!r}.")
    return o
