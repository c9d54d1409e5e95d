"""The XTTS model catalogue: ids, file sets, where the base model lives, and its download.

One owner for "which files make an XTTS model" and "where is XTTS v2 on this machine"; the TTS engine
(inference) and the training engine (fine-tuning base) both ask here. Never imports gradio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from config import XTTS_BASE_MODEL, Settings, resolve_path
from engines.core.errors import MissingWeightsError
from engines.core.progress import LogFn, ProgressFn

log = logging.getLogger(__name__)

BASE_ID = "xtts_v2"  # coqui's base model, downloaded by coqui's ModelManager
TINY_ID = "tiny"  # the tiny random model (tiny mode only)
BASE_FOLDER_NAME = XTTS_BASE_MODEL.replace("/", "--")  # coqui ModelManager's folder name for it
BASE_HF_REPO = "tts-hub/XTTS-v2"  # where coqui 0.28's ModelManager fetches it from
LICENCE_URL = "https://coqui.ai/cpml"

# File sets. A model folder of ours (an export, a copy) needs MODEL_FILES; the base as coqui downloads it
# also has the built-in speakers; fine-tuning needs the DVAE and mel statistics coqui's download skips.
MODEL_FILES = ("config.json", "model.pth", "vocab.json")
SPEAKERS_FILE = "speakers_xtts.pth"
INFERENCE_FILES = (*MODEL_FILES, SPEAKERS_FILE)
TRAINING_ASSETS = ("dvae.pth", "mel_stats.pth")
TRAINING_FILES = ("model.pth", "config.json", "vocab.json", *TRAINING_ASSETS)  # the order messages list them in


def missing_files(folder: Path, files: Sequence[str]) -> list[str]:
    """The names in ``files`` that are not regular files in ``folder``."""
    return [name for name in files if not (folder / name).is_file()]


@dataclass(frozen=True)
class BaseSearch:
    """Where XTTS v2 is looked for and downloaded to (``settings.xtts_cache_dir`` or coqui's defaults)."""

    folders: tuple[Path, ...]  # plain folders, in search order
    hf_cache: Path | None  # Hugging Face cache dir (None = the hub's default)
    prefix: Path  # coqui ModelManager's output prefix

    def hf_snapshot_dir(self) -> Path:
        """The hub cache folder of the base repo (for messages; it may not exist)."""
        cache = self.hf_cache
        if cache is None:
            from huggingface_hub import constants

            cache = Path(constants.HF_HUB_CACHE)
        return cache / f"models--{BASE_HF_REPO.replace('/', '--')}"

    def describe(self) -> str:
        """The searched places, for error messages."""
        return ", ".join(str(p) for p in [*self.folders, self.hf_snapshot_dir()])

    def cached_snapshot(self) -> Path | None:
        """The base repo's snapshot when it is already in the hub cache (never downloads)."""
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(BASE_HF_REPO, cache_dir=self.hf_cache, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached, or a broken cache: the caller downloads or reports
            return None

    def candidates(self) -> list[Path]:
        """Folders that may hold XTTS v2, in search order: the plain folders, then the hub snapshot."""
        snapshot = self.cached_snapshot()
        return [*self.folders, *([snapshot] if snapshot else [])]


def model_folders(models_dir: Path) -> list[Path]:
    """The XTTS model folders in ``models_dir`` (exports, copies), by name: one rule for every picker.

    A folder counts when it holds ``MODEL_FILES``; hidden folders (``.partial`` downloads, staging) never do.
    """
    if not models_dir.is_dir():
        return []
    return [
        folder
        for folder in sorted(models_dir.iterdir(), key=lambda p: p.name.lower())
        if folder.is_dir() and not folder.name.startswith(".") and not missing_files(folder, MODEL_FILES)
    ]


def base_search(settings: Settings) -> BaseSearch:
    """The search places for XTTS v2 under these settings."""
    if settings.xtts_cache_dir is not None:
        root = resolve_path(settings.xtts_cache_dir)
        return BaseSearch((root, root / "tts" / BASE_FOLDER_NAME), root / "hf", root)
    from trainer.io import get_user_data_dir  # the function coqui's ModelManager uses

    prefix = get_user_data_dir("tts")
    return BaseSearch((prefix / BASE_FOLDER_NAME,), None, prefix.parent)


def find_base_model(settings: Settings, files: Sequence[str] = INFERENCE_FILES) -> Path | None:
    """The first search place holding ``files`` (inference set by default); never downloads."""
    for folder in base_search(settings).candidates():
        if folder.is_dir() and not missing_files(folder, files):
            return folder
    return None


def how_to_get_base(models_dir: Path) -> str:
    """The advice every missing-XTTS-v2 message ends with."""
    return (
        f"To get them: connect to the internet with COQUI_TOS_AGREED=1 set (accepting Coqui's CPML licence, "
        f"{LICENCE_URL}) and try again, or copy an XTTS v2 model folder ({', '.join(INFERENCE_FILES)}) to "
        f"{models_dir}/<name> and pick it in the model list."
    )


TOS_FILE = "tos_agreed.txt"  # coqui ModelManager's own marker of an accepted licence
TOS_TEXT = "I have read, understood and agreed to the Terms and Conditions."  # what coqui writes in it


def _tos_file(settings: Settings) -> Path:
    return base_search(settings).prefix / "tts" / BASE_FOLDER_NAME / TOS_FILE


def licence_accepted(settings: Settings) -> bool:
    """Whether Coqui's CPML licence was accepted: ``COQUI_TOS_AGREED=1`` or coqui's marker file."""
    return os.environ.get("COQUI_TOS_AGREED") == "1" or _tos_file(settings).is_file()


def accept_licence(settings: Settings) -> Path:
    """Record that the user accepted the CPML (the app's "I agree" button), as coqui's own prompt does."""
    path = _tos_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TOS_TEXT, encoding="utf-8")
    log.info("Coqui CPML licence accepted (%s)", path)
    return path


def download_base(settings: Settings, models_dir: Path, progress: ProgressFn, log_fn: LogFn) -> Path:
    """Fetch XTTS v2 through coqui's ModelManager into the search places.

    Raises:
        MissingWeightsError: licence not accepted, offline, hub down, or an incomplete download.
    """
    search = base_search(settings)
    expected = ", ".join(INFERENCE_FILES)
    how = how_to_get_base(models_dir)
    if not licence_accepted(settings):
        # coqui would otherwise prompt on stdin, which blocks a server.
        raise MissingWeightsError(
            f"XTTS v2 weights are not on this machine (searched {search.describe()} for {expected}). "
            f"Downloading them requires accepting Coqui's CPML licence. {how}"
        )
    from TTS.utils.manage import ModelManager

    hf_cache = search.hf_cache

    class _Manager(ModelManager):
        def _download_hf_model(self, model_item: dict) -> Path:  # honour xtts_cache_dir for the HF cache
            from huggingface_hub import snapshot_download

            return Path(
                snapshot_download(
                    model_item["repo_id"],
                    allow_patterns=model_item.get("allow"),
                    ignore_patterns=model_item.get("ignore"),
                    cache_dir=hf_cache,
                )
            )

    manager_cls = ModelManager if hf_cache is None else _Manager
    log_fn("Downloading XTTS v2 (~1.9 GB, first use only)...")
    progress(0.0, desc="Downloading XTTS v2 (~1.9 GB, first use only)")
    try:
        manager = manager_cls(
            output_prefix=None if settings.xtts_cache_dir is None else search.prefix, progress_bar=True
        )
        _, config_path, _ = manager.download_model(XTTS_BASE_MODEL)
    except Exception as exc:  # noqa: BLE001 - offline, refused licence, hub down: all mean "no weights"
        log.warning("XTTS v2 download failed: %s", exc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MissingWeightsError(
            f"Could not download XTTS v2 ({type(exc).__name__}: {first}). Searched "
            f"{search.describe()} for {expected}. {how}"
        ) from exc
    folder = Path(config_path).parent
    missing = missing_files(folder, INFERENCE_FILES)
    if missing:
        raise MissingWeightsError(f"The XTTS v2 download in {folder} lacks {', '.join(missing)}. {how}")
    return folder


__all__ = [
    "BASE_FOLDER_NAME",
    "BASE_HF_REPO",
    "BASE_ID",
    "INFERENCE_FILES",
    "MODEL_FILES",
    "SPEAKERS_FILE",
    "TINY_ID",
    "TRAINING_ASSETS",
    "TRAINING_FILES",
    "BaseSearch",
    "base_search",
    "accept_licence",
    "download_base",
    "find_base_model",
    "how_to_get_base",
    "licence_accepted",
    "missing_files",
]
