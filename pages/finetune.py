"""Finetune tab (coming in its own issue)."""

from __future__ import annotations

import gradio as gr


def build(engines) -> None:
    gr.Markdown("The Finetune tab is coming: see the project's issues.")
