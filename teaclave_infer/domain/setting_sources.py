"""Where settings come from, and the documentation's table of them, both from the definitions
in settings.py: a flag wins over its `TEACLAVE_*` variable, a variable over the default."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ByteSize, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource

from ..errors import TeaclaveInferError
from .settings import ENV_PREFIX, MIB, Command, Settings

__all__ = ["Setting", "definitions", "from_sources", "table"]


@dataclass(frozen=True)
class Setting:
    """One setting as a command line and the docs see it."""

    name: str  # the field of Settings
    env: str
    flag: str
    help: str
    default: str  # as the docs say it
    commands: tuple[Command, ...]
    metavar: str | None
    repeatable: bool


def _shown(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    assert isinstance(extra, dict)
    if extra["shown"]:
        return str(extra["shown"])
    value = field.get_default(call_default_factory=True)
    if isinstance(value, ByteSize) and value % MIB == 0:
        return f"{value // MIB} MiB"
    return "none" if value is None else str(value)


def definitions() -> Iterator[Setting]:
    """Every setting, in the order of their definitions."""
    for name, field in Settings.model_fields.items():
        env = str(field.validation_alias)
        extra = field.json_schema_extra
        assert isinstance(extra, dict)
        yield Setting(
            name=name,
            env=env,
            flag="--" + env.removeprefix(ENV_PREFIX).lower().replace("_", "-"),
            help=field.description or "",
            default=_shown(field),
            commands=tuple(extra["commands"]),  # type: ignore[arg-type]
            metavar=extra["metavar"],  # type: ignore[arg-type]
            repeatable=isinstance(field.get_default(call_default_factory=True), tuple),
        )


def from_sources(given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from `given` (field name -> value, from flags), else from the `TEACLAVE_*`
    variables of `environ` (default: this process's; an empty one counts as unset), else the
    defaults. A value that does not hold is a TeaclaveInferError naming its flag and variable."""
    source = EnvSettingsSource(Settings, case_sensitive=True, env_ignore_empty=True)
    if environ is not None:
        source.env_vars = environ
    by_env = {s.env: s.name for s in definitions()}
    merged = {by_env[env]: value for env, value in source().items()} | dict(given)
    try:
        return Settings(**merged)
    except ValidationError as err:
        raise TeaclaveInferError(_described(err)) from None


def _described(err: ValidationError) -> str:
    """The first error of a validation, on one line, naming the setting's flag and variable."""
    first = err.errors()[0]
    names = {s.name: s for s in definitions()} | {s.env: s for s in definitions()}
    setting = names.get(str(first["loc"][0])) if first["loc"] else None
    if setting is None:
        return f"settings: {first['msg']}"
    secret = setting.name in ("db_url", "platform_url")  # URLs may hold a password
    shown = "" if secret else f" (got {first['input']!r})"
    return f"{setting.flag} / {setting.env}: {first['msg']}{shown}"


def table() -> str:
    """The documentation's table of settings (Markdown), from the definitions."""
    rows = ["| flag | variable | commands | default | meaning |", "|---|---|---|---|---|"]
    for s in definitions():
        flag = f"`{s.flag} {s.metavar}`" if s.metavar else f"`{s.flag}`"
        commands = ", ".join(s.commands)
        rows.append(f"| {flag} | `{s.env}` | {commands} | {s.default} | {s.help} |")
    rows.append("")
    rows.append(
        "A flag wins over its variable, a variable over the default; an empty variable counts "
        "as unset. BYTES take a number or a size with its unit: 64MiB, 1GB."
    )
    return "\n".join(rows)
