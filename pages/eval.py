"""Eval tab (coming in its own issue)."""

from __future__ import annotations

import gradio as gr


def build(engines) -> None:
    gr.Markdown("The Eval tab is coming: see the project's issues.")
