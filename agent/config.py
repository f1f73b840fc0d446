"""The one settings object: defaults < TOML file < environment (`MMAGENT_*`) < explicit overrides.

The TOML file is `mmagent.toml` in the working directory, or the path in `MMAGENT_CONFIG`.
Nested sections use `__` in env vars, e.g. `MMAGENT_LIMITS__MAX_STEPS=4`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Limits(BaseModel):
    max_steps: int = Field(8, ge=1, le=100, description="Act rounds per turn before a graceful stop.")
    max_reflections: int = Field(2, ge=0, le=10, description="Reflect/replan rounds per turn.")
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MMAGENT_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(Path("data"), description="Everything the app writes: databases, artifacts, caches.")
    llm: str = Field("auto", description="auto | bundled | hf:<repo-or-path> | openai:<model> | scripted:<file.jsonl>")
    openai_model: str = Field("gpt-4o-mini", description="The model `auto` asks for when an OpenAI-compatible server is configured.")
    hf_model: str | None = Field(None, description="The hf model `auto` prefers when it is available locally.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    limits: Limits = Limits()
    routing: Routing = Routing()
    sampling: Sampling = Sampling()

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
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

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
