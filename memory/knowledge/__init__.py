"""The knowledge base: ingest documents, store chunks in Chroma, retrieve them (docs/knowledge.md).

Modules, one job each: `loaders` (files -> sections), `chunking`, `store` (Chroma embedded or
server), `keyword` (BM25), `retrieval` (fusion, reranking), `ingest` (pipeline pieces, hashes),
`base` (`KnowledgeBase`, the API), `wrapping` (retrieved text as quoted data for the model).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["KnowledgeBase", "IngestReport", "FileResult", "Hit"]
_HOMES = {"KnowledgeBase": "base", "IngestReport": "ingest", "FileResult": "ingest", "Hit": "retrieval"}


def __getattr__(name: str) -> Any:
    # Imported on first use: `agent.config` imports `memory.knowledge.settings`, and reading the
    # settings should not load the whole knowledge base with it.
    if name in _HOMES:
        return getattr(importlib.import_module(f"memory.knowledge.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
