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

# The sections the bottom layers read live there (dependencies point down); they are part of
# Settings like every other section.
from memory.knowledge.settings import Knowledge


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

    child_processes: bool = Field(
        True, description="Run the sentence encoder and long-term memory's Chroma in two child processes: both hold the GIL for "
        "milliseconds per call, which stalled every other request (docs/benchmarks.md). Off: all in the server's process.",
    )
    worker_threads: int = Field(
        16, ge=2, le=256, description="Threads for the server's blocking calls (embeddings and memory in the child processes, "
        "moderation, files); most of them wait on a child, so more than asyncio's default of 6 (bench/load.py: +5-8%).",
    )
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest /v1 request body accepted (413 beyond); images travel as data URLs.")
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Per-user API keys, user id -> key: a request with one of them acts as that user (its threads, memories "
        "and files; /v1 and /mcp), whatever user it names. `api_key` stays the shared key that may act for any user.",
    )


_MCP_SERVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"


class McpServer(BaseModel):
    """One external MCP server (docs/mcp.md): a stdio command, or a streamable HTTP URL."""

    command: str | None = Field(None, description="stdio: the program to start (e.g. `uvx`, `python`).")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment variables (PATH, HOME... are passed on).")
    cwd: Path | None = Field(None, description="stdio: working directory.")
    url: str | None = Field(None, description="Streamable HTTP: the endpoint, e.g. http://127.0.0.1:8000/mcp.")
    headers: dict[str, str] = Field(default_factory=dict, description="Streamable HTTP: headers sent with every request (e.g. Authorization).")
    ask_first: bool = Field(False, description="Every tool of this server needs the person's approval before it runs (refused where no one can be asked).")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Longest wait for one tool call.")
    start_timeout_s: float = Field(20.0, gt=0, le=600, description="Longest wait for the server to start and list its tools.")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServer":
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs either `command` (stdio) or `url` (streamable HTTP), not both")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"an MCP server url must start with http:// or https://, not {self.url[:40]!r}")
        return self


class Mcp(BaseModel):
    """MCP: servers whose tools the agent uses, and serving our tools at /mcp (docs/mcp.md)."""

    servers: dict[str, McpServer] = Field(default_factory=dict, description="[mcp.servers.NAME]: NAME (letters, digits, _ and -) prefixes its tools: NAME__tool.")
    serve_http: bool = Field(True, description="`mmagent serve` also serves our tools over MCP at /mcp (behind the API key).")

    @model_validator(mode="after")
    def _names(self) -> "Mcp":
        import re

        for name in self.servers:
            if not re.match(_MCP_SERVER_NAME, name) or "__" in name:
                raise ValueError(f"MCP server name {name[:40]!r} must be 1-32 letters, digits, _ or - (no '__'), starting with a letter or digit")
        return self


class Tracing(BaseModel):
    """OpenTelemetry spans of every run (docs/tracing.md)."""

    enabled: bool = Field(True, description="Trace runs: to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else a JSON file per run under data_dir/traces.")
    keep_runs: int = Field(20, ge=1, le=10_000, description="JSON traces kept per thread (oldest removed first).")
    record_arguments: bool = Field(True, description="Put tool arguments (masked, shortened) on tool-call spans.")


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


class Safety(BaseModel):
    """Moderation, prompt-injection checks, private-data masking, image watermarks and API rate
    limits (docs/safety.md)."""

    moderation: bool = Field(True, description="Classify each user message (before planning) and each answer; flagged input is refused, a flagged answer withheld.")
    categories: list[str] = Field(
        default_factory=lambda: ["violence", "weapons", "self_harm", "sexual_minors", "hate", "harassment", "drugs", "malware", "fraud", "injection"],
        description="Categories that flag a message (the offline classifier's names; `injection` covers prompt injection, jailbreaks and system-prompt requests).",
    )
    threshold: float = Field(0.35, ge=-1, le=1, description="Minimum similarity to the nearest category's labelled examples for a flag.")
    margin: float = Field(0.1, ge=-1, le=1, description="Minimum hostility: mean similarity to the top_k nearest hostile examples minus that to the top_k nearest benign ones (after lexical_boost).")
    top_k: int = Field(5, ge=1, le=50, description="Nearest examples averaged on each side.")
    lexical_boost: float = Field(0.08, ge=0, le=1, description="Hostility added when a text names a harmful term of its nearest category (and taken off for a protective question).")
    thresholds: dict[str, float] = Field(default_factory=dict, description='Per-category thresholds, e.g. {self_harm = 0.5}; the others use `threshold`.')
    moderation_url: str | None = Field(None, description="An OpenAI-compatible /v1/moderations endpoint asked as well (flag when either flags); None: offline only.")
    moderation_model: str = Field("omni-moderation-latest", description="The model named in requests to `moderation_url`.")
    moderation_api_key: SecretStr | None = Field(None, description="Bearer key for `moderation_url`.")
    moderation_timeout_s: float = Field(10.0, gt=0, le=120, description="Longest wait for `moderation_url`; a failure there is logged and the offline verdict stands.")
    mask_pii: bool = Field(True, description="Mask e-mail addresses, phone, ID and card numbers in long-term memories, reflection notes and logs.")
    watermark: bool = Field(True, description="Put an invisible watermark into every generated image.")


class RateLimits(BaseModel):
    """Per-key limits on the HTTP API (docs/api.md); the key is the bearer token, else the client address."""

    requests_per_minute: int | None = Field(None, ge=1, description="Requests per key in any 60 s window (429 with Retry-After beyond); None: no limit.")
    concurrent_runs: int | None = Field(None, ge=1, description="Agent runs (chat completions, thread runs) per key at the same time; None: no limit.")
    max_keys: int = Field(10_000, ge=1, description="Keys tracked at once; the least recently seen are forgotten beyond this.")


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
    mcp: Mcp = Mcp()
    tracing: Tracing = Tracing()
    safety: Safety = Safety()
    rate_limits: RateLimits = RateLimits()

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
