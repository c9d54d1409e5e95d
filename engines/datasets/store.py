"""A dataset on disk: reading and writing ``dataset.json`` and the metadata CSVs, and the clip files.

``dataset.json`` holds the clip table (``clips``: one entry per wav with text, speaker, split, duration,
source, notes and validation results) and the build settings; the coqui CSVs are written from it. A
folder made elsewhere (CSVs only) is read as if it had one, built from the CSVs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engines.core.audio import write_json
from engines.core.errors import InputError
from engines.core.provenance import utc_now
from engines.datasets.cutting import clean_text
from engines.datasets.manifest import SPLITS, WAVS, ClipEntry, read_metadata, write_metadata
from engines.datasets.options import FORMAT_VERSION, DatasetOptions


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(root: Path, meta: dict[str, Any]) -> None:
    """Metadata CSVs and dataset.json, each only when its content changed (a no-op re-run writes nothing)."""
    for split in SPLITS:
        write_metadata(
            root,
            split,
            (
                ClipEntry(f"{WAVS}/{clip}", entry["text"], entry["speaker"])
                for clip, entry in meta["clips"].items()
                if entry.get("split", "train") == split
            ),
        )
    current = read_json(root / "dataset.json") or {}
    strip = {"updated"}
    if {k: v for k, v in current.items() if k not in strip} != json.loads(
        json.dumps({k: v for k, v in meta.items() if k not in strip}, default=str)
    ):
        meta["updated"] = utc_now()
        write_json(root / "dataset.json", meta)
    wanted = set(meta["clips"]) | set(meta.get("dropped_clips", {}))  # dropped clips stay restorable
    for wav in (root / "wavs").iterdir():
        # leftovers: half-written temp files of a killed run, clips of re-done files
        if wav.is_file() and (wav.name.endswith(".tmp") or (wav.suffix == ".wav" and wav.name not in wanted)):
            wav.unlink(missing_ok=True)


def load(root: Path, name: str) -> dict[str, Any]:
    """A dataset's dataset.json; datasets made elsewhere (CSV only) get one built from the CSVs.

    Raises:
        InputError: the folder holds neither.
    """
    meta = read_json(root / "dataset.json")
    if meta is not None and "clips" in meta:
        return meta
    clips: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        for row in read_metadata(root, split):
            audio = row.audio_file
            if not audio.startswith(f"{WAVS}/") or "/" in audio[len(WAVS) + 1 :]:
                continue
            clip = audio[len(WAVS) + 1 :]
            clips[clip] = {
                "clip": clip,
                "text": clean_text(row.text),
                "speaker": clean_text(row.speaker_name) or name,
                "duration": _wav_seconds(root / WAVS / clip),
                "split": split,
                "sha256": "",
                "notes": [],
            }
    if not clips and meta is None:
        raise InputError(f"{name!r} is not a dataset: no dataset.json and no metadata_train.csv.")
    meta = meta or {"format": FORMAT_VERSION, "name": name, "language": "", "status": "external", "created": ""}
    meta["clips"] = clips
    return meta


def limits(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's settings, with defaults for datasets made elsewhere."""
    defaults = asdict(DatasetOptions())
    return {**defaults, **{k: v for k, v in meta.get("settings", {}).items() if k in defaults}}


def check_clip(name: str, clip: str) -> str:
    """A clip name as the user gave it, stripped.

    Raises:
        InputError: empty, or a name that is a path.
    """
    clip = (clip or "").strip()
    if not clip or "/" in clip or "\\" in clip or clip.startswith("."):
        raise InputError(f"Pick a clip of dataset {name!r}.")
    return clip


def clip_file(root: Path, name: str, clip: str) -> Path:
    """The wav of one clip (its name checked by ``check_clip``) of the dataset at ``root``.

    Raises:
        InputError: no such clip.
    """
    path = root / "wavs" / clip
    if not path.is_file():
        raise InputError(f"Clip {clip!r} is not in dataset {name!r}.")
    return path


def _wav_seconds(path: Path) -> float:
    import soundfile as sf

    try:
        return round(float(sf.info(str(path)).duration), 3)
    except (RuntimeError, OSError):
        return 0.0
