"""Typed, strict settings: defaults, then an optional TOML file, then ``LANTERN_*`` variables.

Every domain owns one section model in a module of this package (``mqtt.py``, ``push.py`` …);
:class:`Settings` composes them. Unknown keys in the TOML file and unknown ``LANTERN_*``
environment variables are errors that name the setting, so a typo never silently does nothing.

Environment variables use ``__`` between section and key: ``LANTERN_MQTT__PORT=8883``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lantern.errors import ConfigError
from lantern.settings.base import SectionModel
from lantern.settings.http import HTTPSettings
from lantern.settings.ingest import IngestSettings
from lantern.settings.jobs import JobsSettings
from lantern.settings.mqtt import MQTTSettings
from lantern.settings.provisioning import ProvisioningSettings
from lantern.settings.push import PushSettings
from lantern.settings.schedule import ScheduleSettings

ENV_PREFIX = "LANTERN_"
NESTED_DELIMITER = "__"
# Variables with the prefix that are not settings: the config file path and test-only knobs.
_NOT_SETTINGS = ("LANTERN_CONFIG", "LANTERN_TEST_")


class Settings(BaseSettings):
    """All of Lantern's settings. Construct with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        default=Path("lantern-data"),
        description="Directory holding the CA, the SQLite database and local files.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file lantern.db in data_dir. "
        "PostgreSQL: postgresql+asyncpg://user@host/db",
    )
    server_names: list[str] = Field(
        default_factory=list,
        description="Extra DNS names or IP addresses for the server certificate.",
    )
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    log_sql_statements: bool = Field(
        default=False,
        description="Log every SQL statement (never its parameters). Off: SQL and driver "
        "loggers say only warnings, whatever log_level is.",
    )

    mqtt: MQTTSettings = Field(default_factory=MQTTSettings)
    http: HTTPSettings = Field(default_factory=HTTPSettings)
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry CLI flags and the TOML file (merged by load_settings); env beats file.
        return (env_settings, init_settings)

    @property
    def effective_database_url(self) -> str:
        """The database URL in force (SQLite in the data directory unless configured)."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'lantern.db').resolve()}"


def _check_environment(environ: dict[str, str]) -> None:
    """Refuse ``LANTERN_*`` variables that name no setting (a typo would otherwise be ignored)."""
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name.startswith(_NOT_SETTINGS):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
        model: type[BaseModel] = Settings
        for depth, part in enumerate(path):
            field = model.model_fields.get(part)
            if field is None:
                raise ConfigError(
                    f"unknown setting in environment variable {name}: "
                    f"{'.'.join(path[: depth + 1])!r} is not a setting "
                    f"(known: {', '.join(sorted(model.model_fields))})"
                )
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
            else:
                break


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


_SECRET_NAMES = ("token", "password", "secret")


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid settings ({source}):"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown setting")
        elif any(name in where for name in _SECRET_NAMES):
            lines.append(f"  {where}: {err['msg']} (value not shown)")
        else:
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, a TOML file, the environment, then explicit overrides.

    ``config_file`` defaults to ``$LANTERN_CONFIG`` when set. Raises :class:`ConfigError` naming
    every unknown or invalid setting.
    """
    env = dict(os.environ if environ is None else environ)
    _check_environment(env)
    values: dict[str, Any] = {}
    path = config_file or (Path(env["LANTERN_CONFIG"]) if env.get("LANTERN_CONFIG") else None)
    source = "environment"
    if path is not None:
        values = _read_toml(path)
        source = f"{path} and environment"
    values.update({k: v for k, v in overrides.items() if v is not None})
    saved = os.environ.copy() if environ is not None else None
    try:
        if saved is not None:
            os.environ.clear()
            os.environ.update(env)
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
    # CLI overrides must beat the environment, which Settings ranks first.
    if overrides:
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return settings


__all__ = ["ConfigError", "SectionModel", "Settings", "load_settings"]
