"""`docs/reference/vocabulary.md`: the vocabulary's tables for the docs site."""

from __future__ import annotations

from teaclave_client.vocabulary import (
    EXECUTOR_TYPE,
    LIMITS,
    MAX_ARGUMENTS,
    MAX_DEFAULT_CHARS,
    MAX_NDIM,
    MAX_SLOTS,
    MAX_TABLES,
    TABLE_ELEMENT_BYTES,
    DType,
    FailureKind,
    Limit,
    ResultKind,
    Schema,
    Status,
)

from ..abi import PROFILES


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [header, tuple("---" for _ in header), *rows]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


def _amount(value: object, unit: str) -> str:
    if value is None:
        return "off"
    if unit == "bytes" and isinstance(value, int):
        for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= size and value % size == 0:
                return f"{value // size} {name}"
        return f"{value} B"
    if unit == "s" and isinstance(value, float):
        return f"{value:g} s"
    if unit == "instructions" and isinstance(value, int):
        return "2⁶³ - 1" if value == 2**63 - 1 else str(value)
    return str(value)


def _limit_row(limit: Limit[float] | Limit[int] | Limit[int | None]) -> tuple[str, ...]:
    where = [f"`limits.{limit.name}` (≤ {_amount(limit.function_max, limit.unit)})"]
    if limit.function_max is None:
        where = []
    if limit.run_flag:
        where.append(f"`run {limit.run_flag}`")
    if limit.web_name:
        where.append(f"web host `{limit.web_name}`")
    default = _amount(limit.default, limit.unit)
    return (f"`{limit.name}`", limit.meaning, default, ", ".join(where) or "—", limit.why)


def _sections() -> list[tuple[str, str, str]]:
    return [
        (
            "Result kinds",
            "How one invocation ends, in the executor and in the browser host (`ResultKind`).",
            _table(("kind", "meaning"), [(f"`{k}`", k.meaning) for k in ResultKind]),
        ),
        (
            "Failure kinds",
            "A failed task's `result_kind` is a result kind other than `ok`, or one of these "
            "(`FailureKind`); the browser host also ends a call as `integrity`.",
            _table(("kind", "meaning"), [(f"`{k}`", k.meaning) for k in FailureKind]),
        ),
        (
            "Status codes",
            "What a built function returns on failure (`Status`, the runtime's `ti_status`); "
            "a task of a function registered with its manifest that gets one fails as "
            "`function_error` (without a manifest, a negative value is the result, as in "
            "Teaclave).",
            _table(("code", "meaning"), [(str(int(s)), s.meaning) for s in Status]),
        ),
        (
            "Crypto schemas",
            "How a file is encrypted (`Schema`).",
            _table(
                ("schema", "key bytes", "meaning"),
                [(f"`{s}`", str(s.key_bytes), s.meaning) for s in Schema],
            ),
        ),
        (
            "Limits",
            "Each invocation's hard limits and their defaults (`Limit`). Tables count against "
            f"`memory_bytes`: at most {MAX_TABLES} tables sharing at least 1/256 of it at "
            f"{TABLE_ELEMENT_BYTES} B an element.",
            _table(
                ("limit", "what it bounds", "default", "set by", "why this default"),
                [_limit_row(limit) for limit in LIMITS],
            ),
        ),
        (
            "Tensor dtypes",
            f"What a function's inputs and outputs can be (`DType`), of at most {MAX_NDIM} "
            "dimensions.",
            _table(
                ("dtype", "DLPack code, bits", "ONNX type"),
                [(f"`{d}`", f"{d.dlpack[0].name} {d.dlpack[1]}", str(d.onnx_type)) for d in DType],
            ),
        ),
        (
            "Function specs",
            "What `POST /v1/functions` takes in a spec (`spec.py`); without a builder's manifest "
            "the function runs with the `teaclave` profile.",
            _table(
                ("field", "bound"),
                [
                    ("`executor_type`", f"exactly `{EXECUTOR_TYPE}`"),
                    ("`arguments`", f"at most {MAX_ARGUMENTS}, names distinct"),
                    ("an argument's `default`", f"at most {MAX_DEFAULT_CHARS} characters"),
                    ("`inputs`, `outputs`", f"at most {MAX_SLOTS} each; a name once across both"),
                ],
            ),
        ),
        (
            "Profiles",
            "The WebAssembly features a function may use (`teaclave_infer.abi.PROFILES`).",
            _table(
                ("profile", "features", "what for"),
                [
                    (f"`{p.name}`", " ".join(f"`{f}`" for f in p.llvm_features), p.description)
                    for p in PROFILES.values()
                ],
            ),
        ),
    ]


def vocabulary_md(command: str) -> str:
    sections = "".join(f"\n## {title}\n\n{intro}\n\n{table}" for title, intro, table in _sections())
    return (
        f"<!-- Generated by `{command}` from teaclave_client.vocabulary: do not edit. -->\n"
        "# Vocabulary\n\n"
        "Every name and number below is defined once, in `client/teaclave_client/vocabulary/` "
        "(profiles: `teaclave_infer/abi.py`); the C runtime's `ti_constants.h`, the browser "
        "host's `teaclave-constants.js` and this page are generated from it by "
        f"`{command}`; a test fails when one of them is stale.\n\n"
        "To add a result or failure kind, a crypto schema or a limit: one member (with its "
        "meaning) in `kinds.py`, `schemas.py` or `limits.py` there, then the command above; "
        "the code that produces the new kind (or the schema's cipher, in `crypto.py` and "
        "`teaclave-crypto.js`) and its tests are the rest of the change.\n"
        f"{sections}"
    )
