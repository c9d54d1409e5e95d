"""Model and voice names as OpenAI clients send them, resolved against the engines' own lists.

- TTS models: an id or label from ``TTSEngine.list_models()``; OpenAI's ``tts-1``, ``tts-1-hd`` and
  ``gpt-4o-mini-tts`` (dated variants too) mean the default model. Never a path: a client names what is listed.
- ASR models: an id or label from ``ASREngine.list_models()`` (a local checkpoint also by its file name or
  stem); ``whisper-1`` and OpenAI's transcribe models mean the default model.
- Voices: a saved voice, a built-in speaker of the model, or an OpenAI voice name mapped by ``voice_map``
  (``config.OPENAI_VOICES`` with the ``api_voices`` entries over it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import OPENAI_VOICES, Settings
from engines.core.errors import LabError
from rest.errors import bad_request, not_found

TTS_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
ASR_ALIASES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
MODEL_REFERENCE = "(the model's reference.wav)"  # what the X-Voice header says when a model's own voice spoke


def _is_alias(name: str, aliases: tuple[str, ...]) -> bool:
    # "gpt-4o-mini-tts-2025-12-15": OpenAI's dated snapshots of an alias
    return any(name == a or name.startswith(a + "-20") for a in aliases)


def tts_model(tts: Any, name: Any) -> str:
    """The TTS model id a request names.

    Raises:
        APIError: 400 without a model, 404 for a name that is neither listed nor an alias.
    """
    if not isinstance(name, str) or not name.strip():
        raise bad_request("'model' is required: a TTS model id (GET /v1/models) or 'tts-1'.", "model")
    name = name.strip()
    if _is_alias(name, TTS_ALIASES):
        return tts.default_model()
    choices = tts.list_models()
    for label, model_id in choices:
        if name in (model_id, label):
            return model_id
    known = ", ".join(repr(m) for _, m in choices)
    raise not_found(
        f"Unknown TTS model {shown(name)}. Models here: {known}, or {', '.join(TTS_ALIASES)} for the default.",
        "model",
        "model_not_found",
    )


def asr_models(asr: Any) -> list[tuple[str, str]]:
    """(public id, engine id) of every ASR model the engine lists; public ids are what clients send and see.

    Sizes keep their names. A local checkpoint is its file stem ("whisper-tiny.en"), or its file name where the
    stem is already an id ("tiny.en.pt" beside the size "tiny.en"); a local CTranslate2 folder is
    "faster-whisper:<folder name>". Never a path: the server's folders are nobody's business.
    """
    from engines.asr.backends.faster_whisper import PREFIX

    listed = [model_id for _, model_id in asr.list_models()]
    taken = {m for m in listed if not _is_local(m)}
    out: list[tuple[str, str]] = []
    for model_id in listed:
        if not _is_local(model_id):
            out.append((model_id, model_id))
            continue
        local = Path(model_id.removeprefix(PREFIX))
        if model_id.startswith(PREFIX):
            candidates = [PREFIX + local.name]
        else:
            candidates = [local.stem, local.name]
        public = next((c for c in candidates if c not in taken), None)
        if public is not None:  # two files of one name cannot both be named: the first listed wins
            taken.add(public)
            out.append((public, model_id))
    return out


def _is_local(model_id: str) -> bool:
    """Whether an engine id is a file or folder on disk (a local checkpoint, a CTranslate2 folder)."""
    return Path(model_id).is_absolute() or Path(model_id.partition(":")[2]).is_absolute()


def asr_model(asr: Any, name: Any) -> tuple[str, str]:
    """(public id, engine id) of the ASR model a request names (see ``tts_model``); a path is never accepted.

    Raises:
        APIError: 400 without a model, 404 for a name that is neither listed nor an alias (no path in the
            message).
    """
    if not isinstance(name, str) or not name.strip():
        raise bad_request("'model' is required: a Whisper model id (GET /v1/models) or 'whisper-1'.", "model")
    name = name.strip()
    if _is_alias(name, ASR_ALIASES):
        default = asr.default_model()
        public = next((p for p, m in asr_models(asr) if m == default), name)
        return public, default
    choices = asr_models(asr)
    for public, model_id in choices:
        if name == public:
            return public, model_id
    raise not_found(
        f"Unknown ASR model {shown(name)}. Models here: {', '.join(repr(p) for p, _ in choices)}, "
        f"or {', '.join(ASR_ALIASES)} for the default.",
        "model",
        "model_not_found",
    )


def shown(name: str) -> str:
    """A client's name for a message: short, and a path reduced to its last part."""
    tail = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if "/" in name or "\\" in name else name
    return repr(tail[:60] + ("..." if len(tail) > 60 else ""))


def voice_map(settings: Settings) -> dict[str, str]:
    """OpenAI voice name -> target: ``OPENAI_VOICES`` updated by ``api_voices`` ("name=target"; "name=" removes).

    Raises:
        LabError: a malformed entry (a configuration mistake: 503 naming the setting, not the client's fault).
    """
    mapping = dict(OPENAI_VOICES)
    for entry in settings.api_voices:
        name, sep, target = entry.partition("=")
        if not sep or not name.strip():
            raise LabError(f"The api_voices setting has an entry {entry!r}; entries are 'openai_name=target'.")
        if target.strip():
            mapping[name.strip().lower()] = target.strip()
        else:
            mapping.pop(name.strip().lower(), None)
    return mapping


@dataclass(frozen=True)
class Voice:
    """What speaks a request: reference clips, a built-in speaker, or neither (the model's reference.wav)."""

    label: str  # for the X-Voice header
    reference: tuple[Path, ...] = ()
    speaker: str | None = None


def _voice_name(voice: Any) -> str:
    if isinstance(voice, dict):  # OpenAI's custom-voice form: {"id": "..."}
        voice = voice.get("id")
    if not isinstance(voice, str) or not voice.strip():
        raise bad_request("'voice' is required: a saved voice, a built-in speaker or an OpenAI voice name.", "voice")
    return voice.strip()


def resolve_voice(tts: Any, model_id: str, voice: Any, settings: Settings) -> Voice:
    """The voice a request names, for this model.

    Order: a saved voice, a built-in speaker of the model, then an OpenAI name through ``voice_map``. A mapped
    target the model lacks (a fine-tuned model without those speakers, the tiny model) falls back to the
    model's own reference.wav, else to its built-in speakers (the same one for the same name every time).

    Raises:
        APIError: 400 without a voice, 404 for an unknown one (the message lists what there is).
    """
    name = _voice_name(voice)
    saved = tts.list_voices()
    folder = tts.model_dir(model_id)  # None: the base model is not downloaded yet (its speakers are unknown)
    speakers = tts.speakers(model_id) if folder is not None else []
    if name in saved:
        return Voice(name, tuple(tts.voice_files(name)))
    if name in speakers:
        return Voice(name, speaker=name)
    mapping = voice_map(settings)
    target = mapping.get(name.lower())
    if target is not None:
        if target in saved:
            return Voice(target, tuple(tts.voice_files(target)))
        if target in speakers or folder is None:
            return Voice(target, speaker=target)
        if (folder / "reference.wav").is_file():
            return Voice(MODEL_REFERENCE)
        if speakers:
            pick = speakers[list(mapping).index(name.lower()) % len(speakers)]
            return Voice(pick, speaker=pick)
    shown = (saved + speakers[:20]) or ["(none)"]
    raise not_found(
        f"Unknown voice {name!r} for model {model_id!r}. Saved voices and built-in speakers: {', '.join(shown)}"
        f"{' ...' if len(speakers) > 20 else ''}; OpenAI names: {', '.join(mapping) or '(none configured)'}.",
        "voice",
        "voice_not_found",
    )


def voices(tts: Any, settings: Settings) -> list[dict[str, str]]:
    """Every voice name the default model answers to, as Open WebUI lists them: ``[{"id", "name"}]``.

    The name is the id (speaches lists them so), unless one id is several things (a saved voice named like an
    OpenAI voice): then each entry's name says which it is; the request gets the first (``resolve_voice``'s order).
    """
    model_id = tts.default_model()
    folder = tts.model_dir(model_id)
    listed = [(v, "saved voice") for v in tts.list_voices()]
    listed += [(s, "built-in speaker") for s in (tts.speakers(model_id) if folder is not None else [])]
    listed += [(k, v) for k, v in voice_map(settings).items()]
    count: dict[str, int] = {}
    for voice_id, _ in listed:
        count[voice_id] = count.get(voice_id, 0) + 1
    return [{"id": i, "name": i if count[i] == 1 else f"{i} ({what})"} for i, what in listed]


__all__ = [
    "ASR_ALIASES",
    "TTS_ALIASES",
    "Voice",
    "asr_model",
    "asr_models",
    "shown",
    "resolve_voice",
    "tts_model",
    "voice_map",
    "voices",
]
