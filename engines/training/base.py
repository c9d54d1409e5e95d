"""The model a fine-tune starts from: the choices, the XTTS v2 search, and the files GPTTrainer needs.

A base is XTTS v2 (coqui's weights), the tiny random model (tiny mode) or an exported voice under
workspace/models (to train it further). Besides the model files, training needs ``dvae.pth`` and
``mel_stats.pth`` (``TRAINING_ASSETS``), which exports do not copy: they are found next to the model,
where its export.json says, or in the default base.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import Settings
from engines.core import catalog
from engines.core.catalog import BASE_ID, MODEL_FILES, TINY_ID, TRAINING_ASSETS, TRAINING_FILES
from engines.core.errors import InputError, LabError, MissingWeightsError
from engines.core.names import check_name
from engines.training.runs import BaseModel

if TYPE_CHECKING:
    from engines.tiny import TinyModels


def read_model_args(config: Path) -> dict[str, Any]:
    """The ``model_args`` of an XTTS config.json (the GPT's shape and limits).

    Raises:
        OSError, ValueError: the file is missing or not JSON.
    """
    args: dict[str, Any] = json.loads(config.read_text(encoding="utf-8")).get("model_args", {})
    return args


class BaseResolver:
    """Finds the base models a run may start from, and the files of the one picked."""

    def __init__(self, settings: Settings, tiny: TinyModels | None = None) -> None:
        """
        Args:
            settings: app settings (tiny_models, xtts_cache_dir, workspace).
            tiny: the tiny models in tiny mode (built on demand when None).
        """
        self.settings = settings
        self._tiny = tiny

    @property
    def models_dir(self) -> Path:
        return self.settings.workspace_sub("models")

    def choices(self) -> list[tuple[str, str]]:
        """(label, model id) choices: the tiny or XTTS v2 base, then workspace/models/*."""
        choices = [("Tiny XTTS (random weights)", TINY_ID)] if self.settings.tiny_models else []
        choices.append(("XTTS v2 (coqui base)", BASE_ID))
        choices += [(f"{f.name} (continue this voice)", f.name) for f in catalog.model_folders(self.models_dir)]
        return choices

    def default(self) -> str:
        return TINY_ID if self.settings.tiny_models else BASE_ID

    def xtts_candidates(self) -> list[Path]:
        """Folders that may hold XTTS v2, in search order (the model catalogue's)."""
        return catalog.base_search(self.settings).candidates()

    def xtts_dir(self) -> Path:
        """The XTTS v2 folder to fine-tune from: the first candidate with model.pth, else the first candidate."""
        candidates = self.xtts_candidates()
        for folder in candidates:
            if (folder / "model.pth").is_file():
                return folder
        return candidates[0]

    def tiny_dir(self) -> Path:
        if self._tiny is None:
            from engines.tiny import ensure_tiny_models

            self._tiny = ensure_tiny_models(self.settings.workspace_sub("tiny-models"))
        return Path(self._tiny.xtts_dir)

    def resolve(self, model_id: str) -> BaseModel:
        """Find the files a fine-tune starts from.

        Args:
            model_id: "xtts_v2", "tiny" (tiny mode only) or a model directory (absolute, or a folder
                name under workspace/models) to continue training a fine-tuned voice.

        Returns:
            The resolved base.

        Raises:
            InputError: unknown id, or "tiny" outside tiny mode.
            MissingWeightsError: files missing, naming the folder and the files.
        """
        model_id = (model_id or "").strip() or self.default()
        if model_id == TINY_ID:
            if not self.settings.tiny_models:
                raise InputError("The 'tiny' base exists only in tiny-model mode (--tiny-models).")
            folder = self.tiny_dir()
        elif model_id == BASE_ID:
            folder = self.xtts_dir()
            missing = catalog.missing_files(folder, TRAINING_FILES)
            if missing:
                searched = ", ".join(str(c) for c in self.xtts_candidates())
                raise MissingWeightsError(
                    f"The XTTS v2 base for fine-tuning is incomplete: {folder} lacks {', '.join(missing)} "
                    f"(searched {searched}). Load XTTS v2 once in the TTS tab (that downloads model.pth, "
                    "config.json, vocab.json and speakers_xtts.pth; coqui skips dvae.pth), then put dvae.pth "
                    "and mel_stats.pth from https://huggingface.co/coqui/XTTS-v2 into that folder."
                )
        else:
            path = Path(model_id).expanduser()
            folder = path if path.is_absolute() else self.models_dir / check_name(model_id, "model")
            if not folder.is_dir():
                raise InputError(f"Base model {model_id!r} not found (looked in {folder}).")
        missing = catalog.missing_files(folder, MODEL_FILES)
        if missing:
            raise MissingWeightsError(
                f"Model folder {folder} lacks {', '.join(missing)}; it cannot be a fine-tuning base."
            )
        assets = self._training_assets(folder, model_id)
        speakers = folder / "speakers_xtts.pth"
        return BaseModel(
            model_id=model_id,
            model_dir=folder,
            checkpoint=folder / "model.pth",
            config=folder / "config.json",
            vocab=folder / "vocab.json",
            dvae=assets["dvae.pth"],
            mel_stats=assets["mel_stats.pth"],
            speakers=speakers if speakers.is_file() else None,
        )

    def _training_assets(self, folder: Path, model_id: str) -> dict[str, Path]:
        """dvae.pth / mel_stats.pth: in the folder, else where its export.json says, else the default base's."""
        candidates = [folder]
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((folder / "export.json").read_text(encoding="utf-8")).get("training_assets")
            if recorded:
                candidates.append(Path(recorded))
        if model_id not in (TINY_ID, BASE_ID):
            candidates.append(self.tiny_dir() if self.settings.tiny_models else self.xtts_dir())
        for candidate in candidates:
            if all((candidate / name).is_file() for name in TRAINING_ASSETS):
                return {name: candidate / name for name in TRAINING_ASSETS}
        raise MissingWeightsError(
            f"Fine-tuning needs {' and '.join(TRAINING_ASSETS)} next to the base model; none found in "
            f"{', '.join(str(c) for c in candidates)}. Get them from https://huggingface.co/coqui/XTTS-v2."
        )

    def recorded(self, info: dict[str, Any]) -> BaseModel:
        """The base files a run trained from (run.json keeps absolute paths), re-resolved if they moved.

        Raises:
            MissingWeightsError: the base's files are gone.
        """
        recorded = info.get("base") or {}
        try:
            paths: dict[str, Any] = {
                k: (Path(v) if v is not None and k != "model_id" else v) for k, v in recorded.items()
            }
            base = BaseModel(**paths)
        except TypeError:
            return self.resolve(info.get("base_model", ""))
        missing = [p for p in (base.checkpoint, base.config, base.vocab) if not p.is_file()]
        if missing:
            with contextlib.suppress(LabError):
                return self.resolve(base.model_id)
            raise MissingWeightsError(f"The base model this run trained from is gone: {', '.join(map(str, missing))}.")
        return base
