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
        f"Unknown TTS model {name!r}. Models here: {known}, or {', '.join(TTS_ALIASES)} for the default.",
        "model",
        "model_not_found",
    )


def asr_model(asr: Any, name: Any) -> str:
    """The ASR model id a request names (see ``tts_model``)."""
    if not isinstance(name, str) or not name.strip():
        raise bad_request("'model' is required: a Whisper model id (GET /v1/models) or 'whisper-1'.", "model")
    name = name.strip()
    if _is_alias(name, ASR_ALIASES):
        return asr.default_model()
    choices = asr.list_models()
    for label, model_id in choices:
        local = Path(model_id)
        if name in (model_id, label) or (local.suffix == ".pt" and name in (local.name, local.stem)):
            return model_id
    known = ", ".join(repr(Path(m).stem if m.endswith(".pt") else m) for _, m in choices)
    raise not_found(
        f"Unknown ASR model {name!r}. Models here: {known}, or {', '.join(ASR_ALIASES)} for the default.",
        "model",
        "model_not_found",
    )


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
    """Every voice name the default model answers to, as Open WebUI lists them: ``[{"id", "name"}]``."""
    model_id = tts.default_model()
    folder = tts.model_dir(model_id)
    listed = [{"id": v, "name": f"{v} (saved voice)"} for v in tts.list_voices()]
    listed += [{"id": s, "name": s} for s in (tts.speakers(model_id) if folder is not None else [])]
    listed += [{"id": k, "name": f"{k} ({v})"} for k, v in voice_map(settings).items()]
    return listed


__all__ = ["ASR_ALIASES", "TTS_ALIASES", "Voice", "asr_model", "resolve_voice", "tts_model", "voice_map", "voices"]
