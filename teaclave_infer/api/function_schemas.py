"""Function bodies: the spec a function is registered with (in this platform's words or in
Teaclave's), the builder's manifest as far as the platform reads it, and what is shown of a
function."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from teaclave_client.vocabulary import (
    DEADLINE_S,
    EXECUTOR_TYPE,
    MANIFEST_FORMAT,
    MAX_ARGUMENTS,
    MAX_DEFAULT_CHARS,
    MAX_SLOTS,
    MEMORY_BYTES,
    OUTPUT_BYTES,
    DType,
    executor_refusal,
)

from ..abi import DEFAULT_PROFILE, PROFILES
from .bounded import INT32_MAX, Body, Fuel, Name, Quota, one_of

Description = Field(default="", max_length=4096)
# Teaclave's field names (its FunctionArgument, its register_function), taken as ours.
ARGUMENT_SPELLINGS = {"key": "name", "default_value": "default", "allow_overwrite": "overwritable"}
SPEC_SPELLINGS = {"user_allowlist": "allowlist", "usage_quota": "quota"}


def _ours(data: Any, spellings: dict[str, str]) -> Any:
    """`data` with Teaclave's field names made ours; ValueError if a field is given under both
    names (which one was meant cannot be known)."""
    if not isinstance(data, dict):
        return data
    renamed = dict(data)
    for theirs, ours in spellings.items():
        if theirs in renamed:
            if ours in renamed:
                raise ValueError(f"give `{ours}` or Teaclave's `{theirs}`, not both")
            renamed[ours] = renamed.pop(theirs)
    return renamed


def _teaclave_spec(data: Any) -> Any:
    """A spec or an update with Teaclave's names made ours; its `usage_quota` None (no limit)
    is our -1."""
    if isinstance(data, dict) and "usage_quota" in data and data["usage_quota"] is None:
        data = {**data, "usage_quota": -1}
    return _ours(data, SPEC_SPELLINGS)


class _TeaclaveTerms(Body):
    """A spec or an update: Teaclave's names made ours, and an executor type other than
    exactly ours a ValueError naming it."""

    @model_validator(mode="before")
    @classmethod
    def _teaclave(cls, data: Any) -> Any:
        return _teaclave_spec(data)

    @field_validator("executor_type", check_fields=False)
    @classmethod
    def _wamr(cls, value: str | None) -> str | None:
        if value is not None and (refusal := executor_refusal(value)):
            raise ValueError(refusal)
        return value


def _distinct(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: {name!r} is declared twice")
        seen.add(name)


class Argument(Body):
    """A task argument the function takes: its default, and whether a task may give another
    value (Teaclave's FunctionArgument: `key`, `default_value`, `allow_overwrite`)."""

    name: str = Name
    default: str = Field(default="", max_length=MAX_DEFAULT_CHARS)
    overwritable: bool = True

    @model_validator(mode="before")
    @classmethod
    def _teaclave(cls, data: Any) -> Any:
        return _ours(data, ARGUMENT_SPELLINGS)


class Slot(Body):
    """A declared input or output of a function (Teaclave's FunctionInput/FunctionOutput)."""

    name: str = Name
    description: str = Description
    optional: bool = False


class FunctionLimits(Body):
    """The executor's limits for this function's tasks; unset ones take the executor's
    defaults. Bounded so that one function cannot take a worker's machine."""

    model_config = ConfigDict(extra="forbid")
    deadline_s: float | None = Field(default=None, gt=0, le=DEADLINE_S.function_max)
    fuel: Fuel | None = None
    memory_bytes: int | None = Field(default=None, gt=0, le=MEMORY_BYTES.function_max)
    output_bytes: int | None = Field(default=None, ge=0, le=OUTPUT_BYTES.function_max)


class FunctionSpec(_TeaclaveTerms):
    """How a function is registered. Teaclave's names are taken too (`user_allowlist`,
    `usage_quota`, and those of its FunctionArgument); `executor_type` may only be `wamr`.
    Argument names are distinct, and so are slot names, inputs and outputs together."""

    name: str = Name
    description: str = Description
    executor_type: str = Field(default=EXECUTOR_TYPE, max_length=64)
    public: bool = False
    allowlist: list[str] = Field(default_factory=list, max_length=1000)  # user ids
    # default: one overwritable argument per slot
    arguments: list[Argument] | None = Field(default=None, max_length=MAX_ARGUMENTS)
    # default: the manifest's inputs (+ weights if separate); none without a manifest
    inputs: list[Slot] | None = Field(default=None, max_length=MAX_SLOTS)
    outputs: list[Slot] | None = Field(default=None, max_length=MAX_SLOTS)  # the manifest's
    quota: Quota = -1
    limits: FunctionLimits = Field(default_factory=lambda: FunctionLimits())
    browser: bool = False  # users who may run it may also run it in their browsers

    @field_validator("allowlist")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _distinct_names(self) -> FunctionSpec:
        _distinct("arguments", [a.name for a in self.arguments or []])
        slots = (self.inputs or []) + (self.outputs or [])
        _distinct("inputs and outputs", [s.name for s in slots])
        return self


class _Open(Body):
    """Part of a manifest: the fields the platform or its clients read are checked, any other
    is kept as given."""

    model_config = ConfigDict(extra="allow")


class ManifestProfile(_Open):
    name: str = DEFAULT_PROFILE.name

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}: one of {sorted(PROFILES)}")
        return name


class ManifestWeights(_Open):
    mode: Literal["embedded", "separate"] = "embedded"
    input_id: str | None = Field(default=None, max_length=128)


class ManifestImage(_Open):
    range: tuple[float, float] | None = None  # the pixel range the model expects


class ManifestTensor(_Open):
    """An input or output: its `id` becomes a slot name; clients shape images by the rest."""

    id: str = Name
    shape: list[Annotated[int, Field(ge=0, le=INT32_MAX)]] | None = Field(None, max_length=64)
    dtype: str | None = Field(default=None, pattern=one_of(list(DType)))
    image: ManifestImage | None = None


class Manifest(_Open):
    """The builder's NAME.json, as `POST /v1/functions` takes it: what the platform reads
    (`profile.name`, `weights.mode`, `inputs[].id`, `outputs[].id`) and what its clients read
    (tensor shapes, dtypes, image ranges) are checked, so a wrong one is a 422 naming it.
    `format` is required: any other JSON object is not taken for a builder's manifest."""

    format: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=128)
    profile: ManifestProfile = Field(default_factory=ManifestProfile)
    weights: ManifestWeights = Field(default_factory=ManifestWeights)
    inputs: list[ManifestTensor] = Field(default_factory=list, max_length=MAX_SLOTS)
    outputs: list[ManifestTensor] = Field(default_factory=list, max_length=MAX_SLOTS)

    @field_validator("format")
    @classmethod
    def _ours(cls, value: str) -> str:
        if value != MANIFEST_FORMAT:
            raise ValueError(f"{value!r} is not the builder's manifest format {MANIFEST_FORMAT!r}")
        return value


class FunctionUpdate(_TeaclaveTerms):
    """What an owner may change (Teaclave's `user_allowlist` and `usage_quota` taken too); an
    `executor_type` is checked as at registration, and changes nothing."""

    description: str | None = Field(default=None, max_length=4096)
    executor_type: str | None = Field(default=None, max_length=64)
    public: bool | None = None
    allowlist: list[str] | None = Field(default=None, max_length=1000)
    quota: Quota | None = None
    disabled: bool | None = None
    limits: FunctionLimits | None = None
    browser: bool | None = None
    browser_weights: str | None = Field(default=None, max_length=32)  # "": none


class FunctionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    sha256: str
    owner_id: str
    name: str
    description: str
    public: bool
    allowlist: list[str]
    arguments: list[Argument]
    inputs: list[Slot]
    outputs: list[Slot]
    quota: int
    usage: int
    disabled: bool
    profile: str
    size: int
    limits: dict[str, Any]
    browser: bool
    browser_weights: str | None
    created_at: datetime
    executor_type: str = EXECUTOR_TYPE
    # False for a function registered without a builder's manifest: no tensor shapes to infer by
    has_manifest: bool = True


class BrowserWeights(BaseModel):
    file_id: str
    schema_: str = Field(serialization_alias="schema")
    iv: str  # hex
    cmac: str  # hex
    key: str  # base64: the file key, in the clear, for the browser's user


class BrowserRun(BaseModel):
    function: FunctionPublic
    manifest: dict[str, Any]
    weights: BrowserWeights | None


class FunctionUsage(BaseModel):
    function_id: str
    quota: int
    usage: int
    tasks_by_state: dict[str, int]
