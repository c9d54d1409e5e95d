"""Which XTTS models there are, where their files are, and the one that is loaded (one at a time)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from config import Settings
from engines.core import catalog
from engines.core.catalog import BASE_ID, MODEL_FILES, SPEAKERS_FILE, TINY_ID
from engines.core.device import oom_guard, resolve_device
from engines.core.errors import InputError, LabError, MissingWeightsError
from engines.core.holder import ModelHolder
from engines.core.progress import LogFn, ProgressFn, log_info, no_progress
from engines.tts.speedups import prepare_for_inference
from engines.tts.vocab import lab_tokenizer, model_languages

if TYPE_CHECKING:
    from TTS.tts.models.xtts import Xtts

    from engines.tiny import TinyModels

log = logging.getLogger(__name__)


class XttsModels:
    """The model catalogue (base, tiny, workspace/models folders) and the holder of the loaded model."""

    def __init__(
        self, settings: Callable[[], Settings], gpu_lock: threading.RLock, tiny: TinyModels | None = None
    ) -> None:
        """
        Args:
            settings: returns the engine's current settings (read on each use, so a replaced one applies).
            gpu_lock: held while a model loads or unloads.
            tiny: the tiny random models (tiny mode), else None.
        """
        self._settings = settings
        self.gpu_lock = gpu_lock
        self.tiny = tiny
        self.holder: ModelHolder[Xtts] = ModelHolder("tts")
        # Fold the vocoder's weight norm at load (``speedups``): same samples, less work per sentence.
        self.fold_weight_norm = True
        self._speaker_files: dict[tuple[str, int], list[str]] = {}

    @property
    def models_dir(self) -> Path:
        return self._settings().workspace_sub("models")

    def default_model(self) -> str:
        """The tiny model in tiny mode, else settings.tts_model."""
        settings = self._settings()
        if settings.tiny_models and self.tiny is not None:
            return TINY_ID
        return settings.tts_model

    def resolve(self, model_id: str | None) -> str:
        """A model id as given, stripped; None or empty = ``default_model()``."""
        return (model_id or self.default_model()).strip()

    def list_models(self) -> list[tuple[str, str]]:
        """(label, model_id) for the model picker; workspace/models is re-scanned on each call."""
        choices: list[tuple[str, str]] = []
        if self.tiny is not None:
            choices.append(("Tiny random model (noise; for testing)", TINY_ID))
        base_here = self.find_base_model() is not None
        choices.append(("XTTS v2 base" + ("" if base_here else " (downloads ~1.9 GB on first use)"), BASE_ID))
        choices += [
            (f"{folder.name} (workspace/models)", folder.name) for folder in catalog.model_folders(self.models_dir)
        ]
        return choices

    def find_base_model(self) -> Path | None:
        """The folder holding XTTS v2's files, when already on this machine (never downloads)."""
        return catalog.find_base_model(self._settings())

    def model_dir(
        self,
        model_id: str | None = None,
        *,
        download: bool = False,
        progress: ProgressFn | None = None,
        log_fn: LogFn | None = None,
    ) -> Path | None:
        """The folder of a model id (None for the base model when it is not downloaded and download is False).

        Raises:
            MissingWeightsError: unknown folder, missing files, or the base model cannot be fetched.
            InputError: "tiny" outside tiny mode.
        """
        model_id = self.resolve(model_id)
        if model_id == TINY_ID:
            if self.tiny is None:
                raise InputError("The tiny model exists only in tiny-model mode (start with --tiny-models).")
            return self.tiny.xtts_dir
        if model_id == BASE_ID:
            found = self.find_base_model()
            if found is not None or not download:
                return found
            return catalog.download_base(self._settings(), self.models_dir, progress or no_progress, log_fn or log.info)
        path = Path(model_id).expanduser()
        folder = path if path.is_absolute() else self.models_dir / model_id
        if not folder.is_dir():
            names = [mid for _, mid in self.list_models()]
            raise MissingWeightsError(
                f"Model folder {folder} not found. A model id is {', '.join(repr(n) for n in names)}, "
                f"or a folder holding {', '.join(MODEL_FILES)}."
            )
        missing = catalog.missing_files(folder, MODEL_FILES)
        if missing:
            raise MissingWeightsError(
                f"Model folder {folder} is missing {', '.join(missing)} (an XTTS model folder holds "
                f"{', '.join(MODEL_FILES)} and optionally {SPEAKERS_FILE}). Copy the missing files in, "
                "or re-export the model from the Finetune tab."
            )
        return folder

    def load(
        self, model_id: str | None = None, progress: ProgressFn | None = None, log_fn: LogFn | None = None
    ) -> Xtts:
        """Load a model (downloading the base model on first use); unloads any other TTS model.

        See ``TTSEngine.load``.
        """
        model_id = self.resolve(model_id)
        progress = progress or no_progress
        log_fn = log_fn or log_info
        device = resolve_device(self._settings().device)

        def loader(key: str, dev: str) -> Xtts:
            folder = self.model_dir(key, download=True, progress=progress, log_fn=log_fn)
            assert folder is not None  # download=True either returns a folder or raises
            log_fn(f"Loading TTS model {key} on {dev}...")
            progress(0.05, desc=f"Loading TTS model {key}")
            return _load_from_dir(folder, dev, fold_weight_norm=self.fold_weight_norm)

        with (
            self.gpu_lock,
            oom_guard("loading the TTS model", "Free GPU memory (unload other models in the System panel)."),
        ):
            return self.holder.get(model_id, device, loader)

    def unload(self) -> bool:
        """Free the loaded TTS model. Returns True when one was loaded."""
        with self.gpu_lock:
            return self.holder.unload()

    def languages(self, model_id: str | None = None) -> list[str] | None:
        """The languages a model's config.json lists (None when the model is not on disk yet: XTTS v2's 17)."""
        folder = self.model_dir(self.resolve(model_id))
        if folder is None:
            return None
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return model_languages(config)

    def speakers(self, model_id: str | None = None) -> list[str]:
        """Built-in speakers of a model (read from speakers_xtts.pth; no model load, no download)."""
        model_id = self.resolve(model_id)
        loaded = self.holder.loaded
        model = self.holder.model
        if loaded is not None and loaded.key == model_id and model is not None:
            manager = getattr(model, "speaker_manager", None)
            return list(manager.speakers) if manager is not None else []
        folder = self.model_dir(model_id)
        if folder is None or not (folder / SPEAKERS_FILE).is_file():
            return []
        path = folder / SPEAKERS_FILE
        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._speaker_files:
            self._speaker_files[key] = list(torch.load(path, map_location="cpu", weights_only=True))
        return list(self._speaker_files[key])

    def weights_stamp(self, model_id: str) -> str:
        """Identity of the weights on disk, so cached latents never outlive a re-exported model."""
        folder = self.model_dir(model_id)
        if folder is None:
            return model_id
        stat = (folder / "model.pth").stat()
        return f"{model_id}@{stat.st_mtime_ns}:{stat.st_size}"


def _load_from_dir(folder: Path, device: str, *, fold_weight_norm: bool = True) -> Xtts:
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    try:
        config = XttsConfig()
        config.load_json(str(folder / "config.json"))
        # Xtts(config) is what Xtts.init_from_config does (that alias is deprecated in coqui 0.28).
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True, use_deepspeed=False)
        # coqui's tokenizer for its 17 languages; also the one a fine-tune taught a new language (issue 21)
        model.tokenizer = lab_tokenizer(folder / "vocab.json")
    except FileNotFoundError as exc:
        raise MissingWeightsError(f"Could not load the model in {folder}: {exc}") from exc
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise LabError(
            f"Could not load the model in {folder} ({type(exc).__name__}: {str(exc)[:300]}). "
            f"Is it an XTTS v2 model folder ({', '.join(MODEL_FILES)})?"
        ) from exc
    if fold_weight_norm:
        prepare_for_inference(model)
    return model.to(device)
