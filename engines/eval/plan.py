"""Planning: a config becomes sentences x systems, and everything is checked before any model runs.

Voices, models, languages, ASR options and every synthesis request are refused here with a message that
names what is wrong, so a run never starts on input it would fail on half-way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import XTTS_LANGUAGES, Settings
from engines.core.audio import AUDIO_EXTENSIONS, load_audio
from engines.core.errors import AudioError, InputError, LabError
from engines.core.names import slug
from engines.core.options import OPTION_RANGES
from engines.eval.config import EvalConfig
from engines.eval.results import GROUND_TRUTH, RANDOM, REAL
from engines.eval.sentences import SentenceSet, load_sentences

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # engine modules import torch; eval only needs their types here
    from engines.asr.engine import ASREngine
    from engines.scoring.mos import MOSEngine
    from engines.scoring.sim import SimilarityEngine
    from engines.tts.engine import TTSEngine

TINY_GPT_CHANNELS = 256  # an XTTS GPT narrower than this is a toy (the tiny model or one fine-tuned from it)
AUDIO_PREFIX = "audio:"  # a system that is a folder of audio files made elsewhere ("audio:<folder>")
EXTERNAL = "external"  # tts_weights of such a system: nothing is known about what made it
REFERENCE_STEM = "reference"  # <folder>/reference.<ext>: the voice an audio folder's system imitates (for SIM)


@dataclass(frozen=True)
class Voice:
    """A reference voice as the TTS engine takes it."""

    spec: str  # as given
    kind: str  # "file" | "saved" | "speaker"
    label: str  # short name for tables
    files: tuple[str, ...] = ()  # reference clips (file / saved voice)
    speaker: str | None = None  # built-in speaker
    display: str = ""  # "speaker:Name", "voice:name" or "file:clip.wav" (tables show this, never full paths)


@dataclass(frozen=True)
class System:
    """A model speaking with a voice."""

    name: str  # unique label, "model / voice"
    slug: str  # folder-safe name for audio/
    model_id: str
    model_label: str
    voice: Voice
    checkpoint: str | None = None  # when ranking checkpoints
    audio_dir: str | None = None  # a folder of audio files named by sentence id (no synthesis, no RTF)

    @property
    def external(self) -> bool:
        return self.audio_dir is not None


@dataclass(frozen=True)
class AudioFolder:
    """The files of an ``audio:<folder>`` system matched against a sentence set."""

    folder: Path
    files: dict[str, Path]  # sentence id -> file
    missing: tuple[str, ...]  # sentence ids without a file
    extra: tuple[str, ...]  # audio files that match no sentence id
    reference: Path | None  # <folder>/reference.<ext>, when there

    def notice(self, name: str) -> str:
        """What a user should know about the folder ("" when every sentence has exactly one file)."""
        parts = []
        if self.missing:
            parts.append(
                f"{len(self.missing)} sentence(s) have no file ({', '.join(self.missing[:5])}"
                f"{'...' if len(self.missing) > 5 else ''})"
            )
        if self.extra:
            parts.append(
                f"{len(self.extra)} file(s) match no sentence id and are ignored ({', '.join(self.extra[:5])}"
                f"{'...' if len(self.extra) > 5 else ''})"
            )
        return f"{name}: " + "; ".join(parts) + "." if parts else ""


def match_audio_folder(folder: Path, sentence_set: SentenceSet) -> AudioFolder:
    """Match a folder's audio files to sentence ids: ``<id>.<ext>``, or the file names XTTS Lab's own runs write
    (``<slug(id)>.<ext>``, ``<slug(id)>_r0.<ext>``), so a run's audio/<system>/ folder can be scored again.

    Raises:
        InputError: not a folder, or no file matches any sentence.
    """
    if not folder.is_dir():
        raise InputError(f"Audio folder not found: {folder}")
    audio = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    reference = next((p for p in audio if p.stem.lower() == REFERENCE_STEM), None)
    by_stem = {p.stem: p for p in audio if p is not reference}
    files: dict[str, Path] = {}
    for s in sentence_set.sentences:
        for stem in (s.id, slug(s.id, 60), f"{slug(s.id, 60)}_r0"):
            if stem in by_stem:
                files[s.id] = by_stem[stem]
                break
    used = set(files.values())
    extra = tuple(p.name for p in by_stem.values() if p not in used)
    missing = tuple(s.id for s in sentence_set.sentences if s.id not in files)
    if not files:
        example = sentence_set.sentences[0].id if sentence_set.sentences else "<id>"
        raise InputError(
            f"No file in {folder} is named by a sentence id of {sentence_set.name} (e.g. {example}.wav); "
            f"{len(audio)} audio file(s) there."
        )
    return AudioFolder(folder, files, missing, extra, reference)


class Planner:
    """Checks configs against the TTS and ASR engines it is given (it loads no model)."""

    def __init__(
        self,
        settings: Settings,
        tts: TTSEngine,
        asr: ASREngine,
        sim: SimilarityEngine | None = None,
        mos: MOSEngine | None = None,
    ) -> None:
        self.settings = settings
        self.tts = tts
        self.asr = asr
        self.sim = sim  # engines.scoring.sim.SimilarityEngine (None: SIM off)
        self.mos = mos  # engines.scoring.mos.MOSEngine (None: MOS off)

    def resolve(self, config: EvalConfig) -> EvalConfig:
        """The config with every default it leaves open filled in (what config.json records as used)."""
        return config.with_defaults(
            self.settings.generation,
            sim_encoder=getattr(self.settings, "sim_encoder", "resemblyzer") if self.sim is not None else "none",
            mos=tuple(getattr(self.settings, "mos_predictors", ("dnsmos",))) if self.mos is not None else (),
        )

    def parse_voice(self, spec: str) -> Voice:
        """Turn a voice spec into a Voice (files checked to be audio).

        Raises:
            InputError / AudioError: unknown saved voice, missing file, a file that is not audio.
        """
        spec = (spec or "").strip()
        if not spec:
            raise InputError("An empty reference voice was given.")
        if spec.startswith("speaker:"):
            name = spec.split(":", 1)[1].strip()
            return Voice(spec, "speaker", name, speaker=name, display=f"speaker:{name}")
        if spec.startswith("voice:"):
            name = spec.split(":", 1)[1].strip()
            files = self.tts.voice_files(name)
            for f in files:
                self.check_reference(Path(f), f"Saved voice {name!r}: ")
            return Voice(spec, "saved", name, files=tuple(str(f) for f in files), display=f"voice:{name}")
        path = Path(spec.removeprefix("file:")).expanduser()
        if not path.is_file():
            raise InputError(f"Reference voice file not found: {path}")
        self.check_reference(path)
        return Voice(spec, "file", path.stem, files=(str(path),), display=f"file:{path.name}")

    def check_reference(self, path: Path, prefix: str = "") -> None:
        """Refuse a reference clip that synthesis would refuse or could not clone a voice from.

        The TTS engine refuses clips that are too short, silent or only a DC offset when it first speaks; a
        clip that is loud but holds no voice (hiss, hum, music without singing) it would clone noise from.
        Both are caught here, before a run folder exists. The voice-activity check reads the part synthesis
        uses (the first ``max_ref_seconds``).

        Raises:
            AudioError: not audio, too short, silent, a constant offset, or no speech in the used part.
        """
        from engines.asr.vad import SAMPLE_RATE, check_speech
        from engines.tts.references import check_reference_audio

        audio, sr = load_audio(path, sr=SAMPLE_RATE, max_mb=self.settings.max_upload_mb)
        try:
            check_reference_audio(audio, sr, path.name, self.settings.min_audio_seconds)  # synthesis's own rule
        except AudioError as exc:
            raise AudioError(f"{prefix}Reference voice {exc}") from None
        seconds = len(audio) / sr
        limit = self.settings.max_ref_seconds
        reason = check_speech(audio[: int(limit * sr)]).reason
        if reason is not None:
            where = f" in its first {limit:g} s (the part synthesis uses)" if seconds > limit else ""
            raise AudioError(
                f"{prefix}Reference voice {path.name} holds no speech{where}: {reason}. Give 3-10 s of clean speech "
                "from one speaker."
            )

    def model_languages(self, model_id: str) -> list[str]:
        """Languages in the model's config.json (all of XTTS's when unknown)."""
        try:
            folder = self.tts.model_dir(model_id)
        except LabError:
            raise
        if folder is None:
            return list(XTTS_LANGUAGES)
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return list(XTTS_LANGUAGES)
        langs = cfg.get("languages") or list(XTTS_LANGUAGES)
        return [str(x) for x in langs]

    def model_label(self, model_id: str) -> str:
        path = Path(model_id)
        return path.name if path.is_absolute() else model_id

    def plan(self, config: EvalConfig) -> tuple[SentenceSet, list[System]]:
        """Check the whole config before any model runs.

        Returns:
            The sentences and the systems (model x voice), in run order.

        Raises:
            InputError / AudioError / MissingWeightsError: with a message naming what is wrong.
        """
        config = self.resolve(config)
        low, high = OPTION_RANGES["seed"]
        if not low <= config.seed <= high:
            raise InputError(f"The seed must be a whole number from {int(low)} to {int(high)}; got {config.seed}.")
        if not 0 <= config.retakes <= 10:
            raise InputError(f"Retakes must be from 0 (off) to 10 takes per sentence, got {config.retakes}.")
        if config.repeats < 1 or config.repeats > 100:
            raise InputError(f"Repeats must be between 1 and 100, got {config.repeats}.")
        if config.asr_batch_size < 1:
            raise InputError(f"ASR batch size must be at least 1, got {config.asr_batch_size}.")
        if config.executor not in ("local", "ray"):
            raise InputError(f'Unknown executor {config.executor!r}: use "local" or "ray".')
        if config.workers is not None and config.workers < 1:
            raise InputError(f"Workers must be at least 1, got {config.workers}.")
        if config.bootstrap < 100:
            raise InputError(f"Bootstrap resamples must be at least 100, got {config.bootstrap}.")
        sentence_set = load_sentences(config.sentences, self.settings, config.language, config.max_sentences)
        self._plan_asr(config, sentence_set)
        systems = self._plan_systems(config, sentence_set)
        self._plan_requests(config, sentence_set, systems)
        self.plan_quality(config, systems)
        if config.ground_truth:
            missing = [s for s in sentence_set.sentences if s.audio and not Path(s.audio).is_file()]
            if missing:
                raise InputError(
                    f"{len(missing)} recording(s) of {sentence_set.name} are missing ({', '.join(s.audio or '' for s in missing[:3])}"
                    f"{'...' if len(missing) > 3 else ''}). Restore them, or untick 'Score the real recordings too' "
                    "(config key ground_truth)."
                )
        return sentence_set, systems

    def _plan_asr(self, config: EvalConfig, sentence_set: SentenceSet) -> None:
        """The ASR options and model must handle every language of the set (checked without decoding anything).

        Raises:
            InputError: bad ASR options, or an English-only Whisper with sentences in another language.
            MissingWeightsError: a Whisper checkpoint path that does not exist (for non-English sets).
        """
        from engines.asr.engine import ASROptions, check_options
        from engines.asr.options import whisper_code

        asr_model = config.asr_model or self.asr.default_model()
        for lang in sentence_set.languages:
            if whisper_code(lang) is None:  # a language XTTS learnt here: Whisper detects it (the run says so)
                log.warning("Whisper does not know %r: its sentences are transcribed with language detection.", lang)
                check_options(ASROptions(language=None, beam_size=config.beam_size, temperature=0.0))
                continue
            check_options(ASROptions(language=lang, beam_size=config.beam_size, temperature=0.0))
            try:
                self.asr.check_language(asr_model, lang)
            except InputError as exc:
                ids = [s.id for s in sentence_set.sentences if s.language == lang]
                reason = "it is English-only" if "English-only" in str(exc) else str(exc).rstrip(".")
                raise InputError(
                    f"ASR model {self.model_label(asr_model)!r} cannot transcribe the "
                    f"{XTTS_LANGUAGES.get(lang, lang)} ({lang}) sentences of {sentence_set.name} "
                    f"({', '.join(ids[:3])}{'...' if len(ids) > 3 else ''}): {reason}. Pick a multilingual Whisper "
                    "model (a size without '.en', e.g. 'small' or 'medium') under 'ASR and statistics' (config key "
                    "asr_model), or English sentences."
                ) from exc

    def plan_quality(self, config: EvalConfig, systems: list[System]) -> dict[str, str]:
        """The SIM encoder must be usable now (a stronger verifier that is not downloaded is refused here, not
        half-way); MOS predictors must be known. A known predictor without its weights (UTMOS offline) is not an
        error: its column stays empty and the report says why.

        Returns:
            ``{predictor: reason}`` for the predictors that are not available.

        Raises:
            InputError: an unknown encoder or predictor, or SIM/MOS asked for without the engine.
            MissingWeightsError: the encoder's weights are missing.
        """
        if config.sim_on:
            if self.sim is None:
                raise InputError("Speaker similarity is not available in this app (no similarity engine).")
            model = next((s.model_id for s in systems if not s.external), None)
            self.sim.info(config.sim_encoder or "", model_id=model)
        unavailable: dict[str, str] = {}
        if config.mos:
            if self.mos is None:
                raise InputError("Predicted MOS is not available in this app (no MOS engine).")
            known = [p for p, _label, _ok in self.mos.predictors()]
            for name in config.mos:
                if name not in known:
                    raise InputError(f"Unknown MOS predictor {name!r}. Known: {', '.join(known)}.")
                reason = self.mos.available(name)
                if reason:
                    unavailable[name] = reason
        return unavailable

    def _plan_requests(self, config: EvalConfig, sentence_set: SentenceSet, systems: list[System]) -> None:
        """Every synthesis request passes the TTS engine's own guard: option ranges, seeds, text length, the
        language's text packages."""
        from engines.tts.checks import check_request

        tts_systems = [s for s in systems if not s.external]
        if not tts_systems:
            return
        voice = tts_systems[0].voice
        kwargs: dict[str, Any] = {
            "reference": [Path(f) for f in voice.files] or None,
            "speaker": voice.speaker,
            "max_chars": self.settings.max_text_chars,
            # each system's own languages were checked above; here the text and options, in any of them
            "languages": sorted({lang for s in tts_systems for lang in self.model_languages(s.model_id)}),
        }
        last = max(config.repeats - 1, 0)  # the highest seed used is seed + repeats - 1
        for lang in sentence_set.languages:
            check_request("a", config.tts_options(lang, 0), **kwargs)
            check_request("a", config.tts_options(lang, last), **kwargs)
        for s in sentence_set.sentences:
            try:
                check_request(s.text, config.tts_options(s.language, 0), **kwargs)
            except InputError as exc:
                raise InputError(f"Sentence {s.id!r}: {exc}") from None

    def audio_folder(self, spec: str, sentence_set: SentenceSet) -> AudioFolder:
        """The files of an ``audio:<folder>`` system (see ``match_audio_folder``); the reference, when there, is
        checked like any reference voice."""
        path = Path(spec.removeprefix(AUDIO_PREFIX).strip()).expanduser()
        if not str(path).strip() or str(path) == ".":
            raise InputError('An audio system needs a folder: "audio:<folder>".')
        found = match_audio_folder(path.resolve(), sentence_set)
        if found.reference is not None:
            self.check_reference(found.reference, f"Audio folder {path.name}: ")
        return found

    def _audio_system(self, spec: str, sentence_set: SentenceSet, index: int, names: set[str]) -> System:
        found = self.audio_folder(spec, sentence_set)
        label = found.folder.name
        ref = found.reference
        voice = (
            Voice(str(ref), "file", ref.stem, files=(str(ref),), display=f"file:{found.folder.name}/{ref.name}")
            if ref is not None
            else Voice("", "none", "", display="")
        )
        name, n = f"{label} (audio)", 2
        while name in names:
            name, n = f"{label} (audio {n})", n + 1
        names.add(name)
        return System(
            name=name,
            slug=f"s{index}-audio-{slug(label, 24)}",
            model_id=f"{AUDIO_PREFIX}{found.folder}",
            model_label=label,
            voice=voice,
            audio_dir=str(found.folder),
        )

    def _plan_systems(self, config: EvalConfig, sentence_set: SentenceSet) -> list[System]:
        given = list(dict.fromkeys(m.strip() for m in (config.models or (self.tts.default_model(),)) if m.strip()))
        folders = [m for m in given if m.startswith(AUDIO_PREFIX)]
        models = [m for m in given if not m.startswith(AUDIO_PREFIX)]
        if models and not config.voices:
            raise InputError("Pick at least one reference voice (a file, a saved voice or a built-in speaker).")
        voices = [self.parse_voice(v) for v in dict.fromkeys(config.voices)]
        checkpoints = dict(config.checkpoints)
        systems: list[System] = []
        names: set[str] = {GROUND_TRUTH}
        for model_id in models:
            languages = self.model_languages(model_id)  # raises for unknown models
            lacking = [s for s in sentence_set.sentences if s.language not in languages]
            if lacking:
                langs = sorted({s.language for s in lacking})
                raise InputError(
                    f"Model {self.model_label(model_id)!r} does not speak {', '.join(langs)} (sentences "
                    f"{', '.join(s.id for s in lacking[:5])}{'...' if len(lacking) > 5 else ''}). It speaks: "
                    f"{', '.join(languages)}."
                )
            for voice in voices:
                if voice.kind == "speaker":
                    from engines.tts.checks import check_speaker

                    check_speaker(voice.speaker or "", self.tts.speakers(model_id))
                label = self.model_label(model_id)
                name = f"{label} / {voice.label}"
                n = 2
                while name in names:
                    name, n = f"{label} / {voice.label} ({n})", n + 1
                names.add(name)
                systems.append(
                    System(
                        name=name,
                        slug=f"s{len(systems) + 1}-{slug(label, 24)}-{slug(voice.label, 16)}",
                        model_id=model_id,
                        model_label=label,
                        voice=voice,
                        checkpoint=checkpoints.get(model_id),
                    )
                )
        for spec in folders:
            systems.append(self._audio_system(spec, sentence_set, len(systems) + 1, names))
        return systems

    # ------------------------------------------------------------------ running

    def tts_weights(self, model_id: str) -> str:
        """``"random"`` for the tiny model or a model folder with a toy-sized GPT (e.g. fine-tuned from the tiny
        model), else ``"real"``."""
        from engines.tts.engine import TINY_ID

        if model_id == TINY_ID:
            return RANDOM
        if model_id.startswith(AUDIO_PREFIX):
            return EXTERNAL
        try:
            folder = self.tts.model_dir(model_id)
            if folder is None:
                return REAL
            args = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_args", {})
        except (LabError, OSError, TypeError, AttributeError, json.JSONDecodeError):
            return REAL
        return RANDOM if int(args.get("gpt_n_model_channels") or 1024) < TINY_GPT_CHANNELS else REAL

    def asr_weights(self, asr_model: str) -> str:
        """``"random"`` for a random-weight Whisper (the ASR engine's rule: by id or checkpoint width), else
        ``"real"``. Never loads the weights."""
        return RANDOM if self.asr.random_weights(asr_model) else REAL
