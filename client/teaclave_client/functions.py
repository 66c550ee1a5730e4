"""The client's verbs on functions: register one (built here, or any Teaclave-ABI function),
change it, list and find functions, read a function's manifest."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .accounts import Accounts
from .errors import TeaclaveClientError
from .models import Function, parse
from .vocabulary import MANIFEST_FORMAT

__all__ = ["FunctionVerbs", "read_manifest"]


def read_manifest(path: Path) -> dict[str, Any]:
    """The builder's manifest in `path`; TeaclaveClientError, one line naming the file, if it is
    not JSON, not an object, or has not the builder's `format`."""
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TeaclaveClientError(f"{path}: the manifest is not JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise TeaclaveClientError(f"{path}: the manifest is not a JSON object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise TeaclaveClientError(
            f'{path}: not a builder\'s manifest (no "format": "{MANIFEST_FORMAT}")'
        )
    return manifest


class FunctionVerbs(Accounts):
    def register_function(
        self,
        wasm: bytes | Path,
        manifest: Mapping[str, Any] | Path | None = None,
        name: str | None = None,
        *,
        public: bool = False,
        description: str = "",
        allowlist: Sequence[str] = (),
        quota: int = -1,
        limits: Mapping[str, Any] | None = None,
        **spec: Any,
    ) -> Function:
        """(FunctionOwner) Uploads a function: its .wasm and, if it was built here, the
        builder's NAME.json (a path is read with `read_manifest`). `spec` may add `arguments`,
        `inputs`, `outputs`, `executor_type` (see the service's FunctionSpec; Teaclave's field
        names are taken too). Without a manifest, any Teaclave-ABI function: its slots and
        arguments are those `spec` declares, its name `name`, else the wasm file's."""
        payload = wasm.read_bytes() if isinstance(wasm, Path) else wasm
        manifest_dict = read_manifest(manifest) if isinstance(manifest, Path) else manifest
        default_name = (manifest_dict or {}).get("name") or (
            wasm.stem if isinstance(wasm, Path) else "function"
        )
        ours = {"allowlist": list(allowlist), "quota": quota}
        for theirs, field in (("user_allowlist", "allowlist"), ("usage_quota", "quota")):
            if theirs in spec and ours[field] in ([], -1):  # only Teaclave's name given
                del ours[field]
        body = {
            "name": name or default_name,
            "public": public,
            "description": description,
            "limits": dict(limits or {}),
            **ours,
            **spec,
        }
        files: dict[str, tuple[str, Any, str]] = {
            "wasm": ("function.wasm", payload, "application/wasm")
        }
        if manifest_dict is not None:
            files["manifest"] = (
                "function.json",
                json.dumps(dict(manifest_dict)),
                "application/json",
            )
        data = {"spec": json.dumps(body)}
        return parse(Function, self._json("POST", "/v1/functions", files=files, data=data))

    def update_function(self, function_id: str, **changes: Any) -> Function:
        """(Its owner) Changes `description`, `public`, `allowlist`, `quota`, `disabled`,
        `limits`, `browser` or `browser_weights` (an input file id of yours; "" for none)."""
        return parse(Function, self._json("PATCH", f"/v1/functions/{function_id}", json=changes))

    def get_function_usage(self, function_id: str) -> dict[str, Any]:
        """(Its owner) `quota`, `usage` (tasks that counted against it) and `tasks_by_state`."""
        return dict(self._json("GET", f"/v1/functions/{function_id}/usage"))

    def delete_function(self, function_id: str) -> None:
        """(Its owner) Deletes a function."""
        self._request("DELETE", f"/v1/functions/{function_id}")

    def list_functions(self, scope: str = "allowed", name: str | None = None) -> list[Function]:
        """`allowed`: every function the caller may use; `mine`: the caller's own."""
        params = {"scope": scope, **({"name": name} if name else {})}
        return [parse(Function, f) for f in self._pages("/v1/functions", params)]

    def get_function(self, function_id: str) -> Function:
        return parse(Function, self._json("GET", f"/v1/functions/{function_id}"))

    def get_function_manifest(self, function_id: str) -> dict[str, Any]:
        """The builder's NAME.json the function was registered with: its inputs and outputs
        (NotFound for a function registered without one: see `Function.has_manifest`)."""
        return dict(self._json("GET", f"/v1/functions/{function_id}/manifest"))

    def find_function(self, name_or_id: str) -> Function:
        """A function by id, or by name among those the caller may use (the name must be
        unambiguous)."""
        matches = self.list_functions(name=name_or_id)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(f.id for f in matches)
            raise TeaclaveClientError(
                f"{len(matches)} functions are named {name_or_id!r} ({ids}): give its id"
            )
        return self.get_function(name_or_id)
