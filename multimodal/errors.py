"""Errors of the model layer. Upper layers translate them into their own (LLMError, ToolError)."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which, why, and what to do."""
