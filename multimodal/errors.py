"""Errors of the bottom layers (the model layer and the stores), named by what upper layers call them.

They live here, not where the upper layers use them, so that dependencies point one way
(apps -> agent -> tools -> memory/multimodal): image loading raises `ToolError` and model
loading `LLMError` without importing the tool registry or the agent. `tools.registry.ToolError`
and `agent.llm.base.LLMError` are these classes (re-exported), so callers keep their names.
"""


class ToolError(Exception):
    """Raised by a tool, or by the model-layer code a tool calls (image references, image
    models), for an expected failure; the message goes to the model as is."""


class LLMError(RuntimeError):
    """A backend could not produce a reply (missing model, server down, script exhausted).

    The message is written for the user: it says what failed and what to do about it.
    """


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which, why, and what to do."""
