"""Checked synthesis: every sentence is heard back by Whisper and spoken again (new seed) when it fails.

XTTS fails sentence by sentence: a skipped or repeated word, a cut-off ending, a babbling tail. Each take is
transcribed, scored with the evaluation's own normalizers (``engines.scoring.metrics``: CER, the cut-off and
hallucinated-tail flags) and retaken up to ``RetakeOptions.takes`` times; the best take is kept and every take
is recorded (seed, CER, flags, reason) for the sidecar.

The loop (``best_take``) knows nothing of XTTS or Whisper: it takes a ``speak(take) -> (audio, seed)`` callable
and a ``transcribe(audio, sr, language) -> text`` callable, so a test can put any synthesiser behind it. The
engine side (``TTSEngine.synthesize(retakes=...)``) uses ``take_seed`` and ``reseeded`` from here.

    from engines.tts.retakes import RetakeChecker, RetakeOptions
    checker = RetakeChecker.whisper(engines.asr, RetakeOptions(takes=3, max_cer=0.2))
    result = engines.tts.synthesize("Hello there.", speaker=..., retakes=checker)
    print(result.retakes["retaken"], "sentence(s) needed a retake")
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.core.errors import InputError
from engines.scoring.metrics import failure_flags, score

if TYPE_CHECKING:
    from engines.asr.engine import ASREngine

MAX_TAKES = 10  # most takes per sentence the UI and the API accept
ASR_RATE = 16000  # Whisper hears 16 kHz

Speak = Callable[[int], tuple[np.ndarray, int]]  # take number (0 = first) -> (float32 audio, seed used)
Transcribe = Callable[[np.ndarray, int, str], str]  # (audio, sample rate, language) -> the text heard


@dataclass(frozen=True)
class RetakeOptions:
    """When a take fails and how many more are tried."""

    takes: int = 3  # most takes per sentence, the first included (1 = check and record only, never retake)
    max_cer: float = 0.2  # a take whose character error rate is above this fails
    flags: bool = True  # a cut-off ending or a hallucinated/looping tail fails a take whatever its CER
    asr_model: str | None = None  # Whisper model that listens; None = the ASR engine's default


def check_options(options: RetakeOptions) -> RetakeOptions:
    """Refuse options outside their ranges (the one guard for the UI, the API and scripts).

    Raises:
        InputError: naming the allowed range.
    """
    takes = options.takes
    if isinstance(takes, bool) or not isinstance(takes, int) or not 1 <= takes <= MAX_TAKES:
        raise InputError(f"retakes: takes must be a whole number from 1 to {MAX_TAKES}; got {takes!r}.")
    cer = options.max_cer
    if isinstance(cer, bool) or not isinstance(cer, int | float) or not 0.0 <= float(cer) <= 1.0:
        raise InputError(f"retakes: max_cer must be a number from 0 to 1; got {cer!r}.")
    return options


@dataclass(frozen=True)
class Take:
    """One attempt at one sentence, as the sidecar records it."""

    take: int  # 0 = the first take
    seed: int  # the seed it was spoken with (take 0: the request's seed, the sentence in its stream)
    cer: float  # character error rate of what Whisper heard against the sentence
    flags: list[str]  # failure flags raised (cut_off, hallucinated_tail)
    passed: bool
    reason: str  # why it failed, or "ok"
    heard: str  # Whisper's text
    audio_seconds: float
    gen_seconds: float  # synthesis time of this take
    check_seconds: float  # ASR + scoring time of this take


@dataclass
class SentenceTakes:
    """Every take of one sentence and which one was kept."""

    index: int
    text: str
    takes: list[Take] = field(default_factory=list)
    chosen: int = 0  # index into takes

    @property
    def retaken(self) -> bool:
        return len(self.takes) > 1

    @property
    def passed(self) -> bool:
        return bool(self.takes) and self.takes[self.chosen].passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "text": self.text,
            "chosen": self.chosen,
            "passed": self.passed,
            "takes": [asdict(t) for t in self.takes],
        }


@dataclass
class RetakeReport:
    """The record of a checked synthesis: one entry per sentence."""

    options: RetakeOptions
    sentences: list[SentenceTakes] = field(default_factory=list)

    @property
    def retaken(self) -> int:
        """Sentences that needed more than one take."""
        return sum(s.retaken for s in self.sentences)

    @property
    def failed(self) -> int:
        """Sentences whose best take still fails the check."""
        return sum(not s.passed for s in self.sentences)

    @property
    def check_seconds(self) -> float:
        return sum(t.check_seconds for s in self.sentences for t in s.takes)

    @property
    def gen_seconds(self) -> float:
        return sum(t.gen_seconds for s in self.sentences for t in s.takes)

    def summary(self) -> str:
        n = len(self.sentences)
        text = f"{self.retaken} of {n} sentence(s) needed a retake"
        if self.failed:
            text += f"; {self.failed} still fail(s) the check after {self.options.takes} take(s) (best kept)"
        return text + "."

    def as_dict(self) -> dict[str, Any]:
        return {
            "options": asdict(self.options),
            "sentences_checked": len(self.sentences),
            "retaken": self.retaken,
            "failed": self.failed,
            "check_seconds": round(self.check_seconds, 3),
            "summary": self.summary(),
            "sentences": [s.as_dict() for s in self.sentences],
        }


def judge(
    text: str, heard: str, language: str, audio: np.ndarray, sr: int, options: RetakeOptions
) -> tuple[float, list[str], str]:
    """Score one take as the evaluation scores it.

    Returns:
        (CER, failure flags that fail a take, reason: "ok" or why it failed).
    """
    utt = score(text, heard, language)
    cer = float(utt.cer)
    flags = [f for f in failure_flags(utt, audio, sr).names() if f in ("cut_off", "hallucinated_tail")]
    reasons = []
    if cer > options.max_cer:
        reasons.append(f"CER {cer:.2f} > {options.max_cer:.2f}")
    if options.flags and flags:
        reasons.extend(flags)
    return cer, flags, "; ".join(reasons) or "ok"


def _rank(take: Take) -> tuple[bool, float, int, int]:
    return (not take.passed, take.cer, len(take.flags), take.take)


def best_take(
    speak: Speak,
    text: str,
    language: str,
    sample_rate: int,
    transcribe: Transcribe,
    options: RetakeOptions,
    index: int = 0,
) -> tuple[np.ndarray, SentenceTakes]:
    """Speak one sentence, check it, and retake it until a take passes or ``options.takes`` are spent.

    Args:
        speak: ``speak(take)`` -> (audio, seed used); called with 0, 1, 2, ...
        text: the sentence as it should be heard (the spoken form, after the pronunciation map).
        language: its language code (picks the normalizer).
        sample_rate: the rate of ``speak``'s audio.
        transcribe: ``transcribe(audio, sample_rate, language)`` -> the text heard.
        options: checked retake options.
        index: the sentence's position (for the record).

    Returns:
        (the kept take's audio, the record of every take). The kept take is the first passing one, else the
        one with the lowest CER (fewest flags, then earliest on ties).
    """
    record = SentenceTakes(index, text)
    audios: list[np.ndarray] = []
    for k in range(options.takes):
        started = time.perf_counter()
        audio, seed = speak(k)
        made = time.perf_counter()
        heard = transcribe(audio, sample_rate, language)
        cer, flags, reason = judge(text, heard, language, audio, sample_rate, options)
        checked = time.perf_counter()
        take = Take(
            take=k,
            seed=int(seed),
            cer=round(cer, 4),
            flags=flags,
            passed=reason == "ok",
            reason=reason,
            heard=heard,
            audio_seconds=round(len(audio) / sample_rate, 3),
            gen_seconds=round(made - started, 3),
            check_seconds=round(checked - made, 3),
        )
        record.takes.append(take)
        audios.append(audio)
        if take.passed:
            break
    record.chosen = min(record.takes, key=_rank).take
    return audios[record.chosen], record


def take_seed(request_seed: int, sentence: int, take: int) -> int:
    """The seed of retake ``take`` (>= 1) of sentence ``sentence``: fixed by the request's seed, so a checked
    synthesis with a given seed is reproducible, and different for every sentence and take."""
    return (int(request_seed) + 1_000_003 * (sentence + 1) + 7_919 * take) % 2**31


@contextlib.contextmanager
def reseeded(seed: int) -> Iterator[None]:
    """Sample with ``seed`` inside the block, then put torch's RNG back as it was.

    A retake must not shift the random stream of the sentences after it: with the stream restored, every
    sentence whose first take passes sounds exactly as it would without checking.
    """
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class RetakeChecker:
    """Retake options plus the ear that checks: what ``TTSEngine.synthesize(retakes=...)`` takes."""

    def __init__(
        self,
        options: RetakeOptions,
        transcribe: Transcribe,
        label: str = "",
        language_check: Callable[[str], object] | None = None,
    ) -> None:
        self.options = check_options(options)
        self.transcribe = transcribe
        self.label = label  # which ASR model listens (for the record)
        self._language_check = language_check

    @classmethod
    def whisper(cls, asr: ASREngine, options: RetakeOptions | None = None) -> RetakeChecker:
        """A checker that listens with the ASR engine's Whisper (loaded on first use, resident afterwards)."""
        from engines.asr.engine import ASROptions
        from engines.core.audio import resample
        from engines.scoring.metrics import base_language

        options = check_options(options or RetakeOptions())
        model_id = options.asr_model

        def transcribe(audio: np.ndarray, sr: int, language: str) -> str:
            if audio.size == 0:
                return ""
            samples = resample(np.asarray(audio, dtype=np.float32), sr, ASR_RATE, "A take")
            opts = ASROptions(language=base_language(language) or None, segment_timestamps=False)
            return asr.transcribe_array(samples, opts, model_id, source="a take").text

        def language_check(language: str) -> None:
            asr.check_language(model_id, base_language(language) or None)

        return cls(options, transcribe, label=model_id or asr.default_model(), language_check=language_check)

    def check_language(self, language: str) -> None:
        """Refuse, before any synthesis, a language the checking Whisper cannot hear (English-only models).

        Raises:
            InputError: the ASR model cannot transcribe ``language``.
        """
        if self._language_check is not None:
            self._language_check(language)

    def best(
        self, speak: Speak, text: str, language: str, sample_rate: int, index: int
    ) -> tuple[np.ndarray, SentenceTakes]:
        """``best_take`` with this checker's options and ear."""
        return best_take(speak, text, language, sample_rate, self.transcribe, self.options, index)

    def report(self, sentences: Sequence[SentenceTakes]) -> RetakeReport:
        return RetakeReport(self.options, list(sentences))


__all__ = [
    "MAX_TAKES",
    "RetakeChecker",
    "RetakeOptions",
    "RetakeReport",
    "SentenceTakes",
    "Take",
    "best_take",
    "check_options",
    "judge",
    "reseeded",
    "take_seed",
]
