"""Typed, strict settings: defaults, then an optional TOML file, then ``LANTERN_*`` variables.

Every domain owns one section model in a module of this package (``mqtt.py``, ``push.py`` …);
:class:`Settings` composes them. Unknown keys in the TOML file and unknown ``LANTERN_*``
environment variables are errors that name the setting, so a typo never silently does nothing.

Environment variables use ``__`` between section and key: ``LANTERN_MQTT__PORT=8883``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from lantern.errors import ConfigError
from lantern.settings.aws import AWSSettings
from lantern.settings.base import SectionModel
from lantern.settings.cluster import ClusterSettings
from lantern.settings.console import ConsoleSettings
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


class Settings(BaseModel):
    """All of Lantern's settings. Construct with :func:`load_settings` (``Settings()`` is the
    defaults alone: constructing it reads no environment)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

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
    log_format: str = Field(
        default="text",
        pattern="^(text|json)$",
        description="text: human-readable lines; json: one JSON object per line.",
    )
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
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    aws: AWSSettings = Field(default_factory=AWSSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

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


def _describe(exc: ValidationError, origin: Callable[[tuple[str | int, ...]], str]) -> str:
    lines = ["invalid settings:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc)
        source = origin(loc)
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown setting ({source})")
        elif any(name in where for name in _SECRET_NAMES):
            lines.append(f"  {where}: {err['msg']} (value not shown; {source})")
        else:
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r}; {source})")
    return "\n".join(lines)


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment parsing (``__`` nesting, JSON for lists and tables) over
    the mapping it is given instead of the process environment."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # The source reads only the model's fields and the options given here, so a plain
        # model (constructing it reads no environment) serves as well as a BaseSettings.
        model = cast(type[BaseSettings], Settings)
        super().__init__(model, env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED_DELIMITER)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, False, False, None)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, tables merged key by key (a TOML section and an environment
    variable of the same section both count)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _has(values: Mapping[str, Any], loc: tuple[str | int, ...]) -> bool:
    node: Any = values
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, a TOML file, the environment, then explicit overrides
    (command-line flags; a section as a dict, e.g. ``http={"port": 8081}``), validated together.

    ``environ`` defaults to the process environment, which is read, never changed.
    ``config_file`` defaults to ``$LANTERN_CONFIG`` when set. Raises :class:`ConfigError` naming
    every unknown or invalid setting and where its value came from.
    """
    env = dict(os.environ if environ is None else environ)
    _check_environment(env)
    path = config_file or (Path(env["LANTERN_CONFIG"]) if env.get("LANTERN_CONFIG") else None)
    from_file = _read_toml(path) if path is not None else {}
    from_env = _EnvironmentSource(env)()
    from_flags = {k: v for k, v in overrides.items() if v is not None}
    values = _merge(_merge(from_file, from_env), from_flags)

    def origin(loc: tuple[str | int, ...]) -> str:
        if _has(from_flags, loc):
            return "command line"
        if _has(from_env, loc):
            return (
                "environment variable "
                + ENV_PREFIX
                + NESTED_DELIMITER.join(str(p).upper() for p in loc[:2])
            )
        if path is not None and _has(from_file, loc):
            return str(path)
        return "default"

    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


__all__ = ["ConfigError", "SectionModel", "Settings", "load_settings"]
