"""The Gradio web UI, mounted at `/` by `apps.server`."""

from apps.ui.app import build_ui

__all__ = ["build_ui"]
