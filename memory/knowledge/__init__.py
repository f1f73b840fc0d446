"""The knowledge base: ingest documents, store chunks in Chroma, retrieve them (docs/knowledge.md).

Modules, one job each: `loaders` (files -> sections), `chunking`, `store` (Chroma embedded or
server), `keyword` (BM25), `retrieval` (fusion, reranking), `ingest` (pipeline pieces, hashes),
`base` (`KnowledgeBase`, the API), `wrapping` (retrieved text as quoted data for the model).
"""

from memory.knowledge.base import KnowledgeBase
from memory.knowledge.ingest import FileResult, IngestReport
from memory.knowledge.retrieval import Hit

__all__ = ["KnowledgeBase", "IngestReport", "FileResult", "Hit"]
