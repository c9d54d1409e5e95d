"""Finetune tab: "1. Dataset" (``pages.finetune_dataset``) and "2. Train" (``pages.finetune_train``)."""

from __future__ import annotations

import importlib
import logging

import gradio as gr

from engines import Engines
from pages import finetune_dataset

log = logging.getLogger(__name__)


def build(engines: Engines) -> None:
    """The Finetune tab: two sub-tabs, one module each."""
    with gr.Tabs():
        with gr.Tab("1. Dataset", id="ft-dataset-tab"):
            finetune_dataset.build(engines)
        with gr.Tab("2. Train", id="ft-train-tab"):
            try:
                finetune_train = importlib.import_module("pages.finetune_train")
            except ImportError as exc:  # the training page is optional: the dataset tab works without it
                log.warning("Training page unavailable: %s", exc)
                gr.Markdown(f"Training is not available in this build ({exc}).")
            else:
                finetune_train.build(engines)
