"""Before a run starts: does the base's vocabulary cover the dataset's language? If not, the run trains from an
extended copy of the base in ``<run>/base/`` (``engines.tts.vocab`` does the extension).

The copy holds ``vocab.json`` (the base's tokens, then the new ones), ``config.json`` (the language added to
``languages``, the new token count) and ``model.pth`` (the GPT's text rows grown; every other weight as the base's).
The run's ``BaseModel`` points there, so the worker, resume, checkpoint ranking and export all use the extended
vocabulary without knowing about it, and an exported model carries it on: continuing to train that model needs no
second extension.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from engines.core.audio import atomic_file, write_json
from engines.core.errors import InputError
from engines.training.runs import BaseModel
from engines.tts import vocab

log = logging.getLogger(__name__)

BASE_COPY = "base"  # the extended base's folder inside a run


def prepare_base(
    run_dir: Path, base: BaseModel, texts: list[str], language: str, extend: bool = True
) -> tuple[BaseModel, dict[str, Any]]:
    """The base a run trains from, and the vocabulary record for run.json.

    Args:
        run_dir: the new run's folder.
        base: the resolved base model.
        texts: the dataset's transcripts (training and evaluation splits).
        language: the dataset's language code.
        extend: extend when coverage is poor; False = refuse instead.

    Returns:
        ``(base, record)``: ``base`` unchanged when its vocabulary covers the text, else the extended copy;
        ``record`` = ``{"coverage": CoverageReport, "extension": Extension | None}`` as dicts.

    Raises:
        InputError: the vocabulary lacks the language and ``extend`` is off, or the checkpoint is no XTTS GPT.
    """
    report = vocab.coverage(texts, base.vocab, language)
    record: dict[str, Any] = {"coverage": report.as_dict(), "extension": None}
    if not report.needs_extension:
        return base, record
    if not extend:
        raise InputError(f"The base model's vocabulary does not cover this dataset.\n{report.summary()}")
    folder = run_dir / BASE_COPY
    folder.mkdir(parents=True, exist_ok=True)
    ext = vocab.extend_vocabulary(base.vocab, texts, language, folder / "vocab.json")
    config = json.loads(base.config.read_text(encoding="utf-8"))
    languages = vocab.model_languages(config)
    if ext.language not in languages:
        languages.append(ext.language)
    config["languages"] = languages
    config.setdefault("model_args", {})["gpt_number_text_tokens"] = ext.new_size
    config["model_args"]["tokenizer_file"] = "vocab.json"
    write_json(folder / "config.json", config)
    _grow_checkpoint(base.checkpoint, folder / "model.pth", ext.new_size)
    record["extension"] = ext.as_dict()
    log.info("Run %s trains from an extended base: %s", run_dir.name, report.summary().replace("\n", " "))
    return replace(
        base, checkpoint=folder / "model.pth", config=folder / "config.json", vocab=folder / "vocab.json"
    ), record


def _grow_checkpoint(source: Path, target: Path, new_size: int) -> None:
    import torch

    state = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = {**state, "model": vocab.grow_text_rows(state["model"], new_size)}
    else:
        state = vocab.grow_text_rows(state, new_size)
    with atomic_file(target) as tmp:
        torch.save(state, tmp)


__all__ = ["BASE_COPY", "prepare_base"]
