"""The function and file verbs of Teaclave's FrontendService, on the client's.

A function is registered from its wasm and a spec in Teaclave's terms, without our builder's
manifest; only `wamr` functions run here. A file key given in the clear is wrapped to the
platform's published key by the client (bound to the file's id and schema) before it leaves the
process, and kept in the service's key store; it never crosses the network as is."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..models import Function
from ..vocabulary import EXECUTOR_TYPE, executor_refusal
from ._ids import DIRECTORY, external_id, platform_id
from ._service import TeaclaveService, failing
from ._types import FunctionArgument, FunctionInput, FunctionOutput, Message, TeaclaveException

__all__ = ["FunctionsAndFiles", "as_bytes", "check_executor"]

_FIXED = ("name", "arguments", "inputs", "outputs", "payload")  # what update_function cannot change


def check_executor(value: str, what: str) -> None:
    """Only Teaclave's WebAssembly executor runs here (the platform checks registrations too;
    a task's executor is the facade's to check, the platform takes none)."""
    if refusal := executor_refusal(value):
        raise TeaclaveException(f"Failed to {what} ({refusal})")


def as_bytes(value: bytes | Sequence[int], what: str) -> bytes:
    """Teaclave's byte lists (`[0x01, ...]`) or bytes."""
    try:
        return bytes(value)
    except (TypeError, ValueError):
        raise TeaclaveException(f"{what}: expected bytes or a list of byte values") from None


def _slots(slots: Iterable[FunctionInput]) -> list[dict[str, Any]]:
    return [{"name": s.name, "description": s.description, "optional": s.optional} for s in slots]


def _arguments(arguments: Iterable[FunctionArgument]) -> list[dict[str, Any]]:
    return [
        {"name": a.key, "default": a.default_value, "overwritable": a.allow_overwrite}
        for a in arguments
    ]


class FunctionsAndFiles(TeaclaveService):
    def register_function(
        self,
        name: str,
        description: str,
        executor_type: str,
        public: bool = True,
        payload: bytes | Sequence[int] = (),
        arguments: Sequence[FunctionArgument] = (),
        inputs: Sequence[FunctionInput] = (),
        outputs: Sequence[FunctionOutput] = (),
        user_allowlist: Sequence[str] = (),
        usage_quota: int = -1,
        *,
        manifest: Mapping[str, Any] | Path | None = None,
    ) -> str:
        """(FunctionOwner) Registers a Teaclave-ABI function; returns `function-<uuid>`. Its
        allowlist names users by name (or id). `manifest` is this platform's: the builder's
        NAME.json of a function built here, which adds its tensor shapes and its profile
        (a function without one runs on the `teaclave` profile, WAMR's features)."""
        self.check_metadata()
        check_executor(executor_type, "register function")
        wasm = as_bytes(payload, "payload")
        with failing("register function"):
            function = self.client.register_function(
                wasm,
                manifest,
                name,
                public=public,
                description=description,
                allowlist=self._user_ids(user_allowlist, "user_allowlist"),
                quota=usage_quota,
                executor_type=executor_type,
                arguments=_arguments(arguments),
                inputs=_slots(inputs),
                outputs=_slots(outputs),
            )
        return external_id("function", function.id)

    def update_function(
        self,
        function_id: str,
        name: str,
        description: str,
        executor_type: str,
        public: bool = True,
        payload: bytes | Sequence[int] = (),
        arguments: Sequence[FunctionArgument] = (),
        inputs: Sequence[FunctionInput] = (),
        outputs: Sequence[FunctionOutput] = (),
        user_allowlist: Sequence[str] = (),
        usage_quota: int = -1,
    ) -> str:
        """(Its owner) Changes the function's description, public flag, allowlist and quota.
        Its name, payload, arguments, inputs and outputs must be those it was registered with:
        tasks name a function by its hash here, so a new payload is a new function."""
        self.check_metadata()
        check_executor(executor_type, "update function")
        fid = platform_id("function", function_id, "update_function")
        with failing("update function"):
            current = self.client.get_function(fid)
            wanted = {
                "name": name,
                "arguments": _arguments(arguments),
                "inputs": _slots(inputs),
                "outputs": _slots(outputs),
                "payload": hashlib.sha256(as_bytes(payload, "payload")).hexdigest(),
            }
            if changed := [f for f in _FIXED if _fixed(current)[f] != _comparable(f, wanted[f])]:
                raise TeaclaveException(
                    f"Failed to update function (its {', '.join(changed)} cannot change on this "
                    "platform: register a new function)"
                )
            self.client.update_function(
                fid,
                description=description,
                public=public,
                allowlist=self._user_ids(user_allowlist, "user_allowlist"),
                quota=usage_quota,
            )
        return external_id("function", fid)

    def get_function(self, function_id: str) -> Message:
        """The function, with the fields of Teaclave's answer (`owner` a user name where this
        process knows it)."""
        self.check_metadata()
        fid = platform_id("function", function_id, "get_function")
        with failing("get function"):
            return self._teaclave_function(self.client.get_function(fid))

    def list_functions(self, user_id: str | None = None) -> Message:
        """The caller's functions (`registered_functions`) and the others it may use
        (`allowed_functions`); only the caller's own list (`user_id` the caller or None)."""
        self.check_metadata()
        with failing("list functions"):
            me = self._my_id()
            if user_id is not None and self._user_ids([user_id], "user_id") != [me]:
                raise TeaclaveException(
                    "Failed to list functions (this platform lists the caller's own only)"
                )
            mine = {f.id for f in self.client.list_functions("mine")}
            allowed = [f.id for f in self.client.list_functions("allowed") if f.id not in mine]
        return Message(
            registered_functions=[external_id("function", f) for f in sorted(mine)],
            allowed_functions=[external_id("function", f) for f in allowed],
        )

    def get_function_usage_stats(self, function_id: str) -> Message:
        """(Its owner) `function_quota` and `current_usage`, as Teaclave's answer named them."""
        self.check_metadata()
        fid = platform_id("function", function_id, "get_function_usage_stats")
        with failing("get function usage statistics"):
            usage = self.client.get_function_usage(fid)
        return Message(function_quota=usage["quota"], current_usage=usage["usage"])

    def delete_function(self, function_id: str) -> Message:
        self.check_metadata()
        fid = platform_id("function", function_id, "delete_function")
        with failing("delete function"):
            self.client.delete_function(fid)
        return Message()

    def disable_function(self, function_id: str) -> Message:
        """(Its owner) No new task may use the function."""
        self.check_metadata()
        fid = platform_id("function", function_id, "disable_function")
        with failing("disable function"):
            self.client.update_function(fid, disabled=True)
        return Message()

    def register_input_file(
        self,
        url: str,
        schema: str,
        key: bytes | Sequence[int],
        iv: bytes | Sequence[int],
        cmac: bytes | Sequence[int],
    ) -> str:
        """An input file encrypted with `key` in `schema` at `url`, its tag `cmac`; returns
        `input-<uuid>`. The key is wrapped to the platform key here, never sent as is."""
        self.check_metadata()
        key_bytes, iv_bytes = as_bytes(key, "key"), as_bytes(iv, "iv")
        with failing("register input file"):
            info = self.client.register_input_file(
                url, schema, key_bytes, iv_bytes, as_bytes(cmac, "cmac")
            )
        return external_id("input", info.id)

    def register_output_file(
        self, url: str, schema: str, key: bytes | Sequence[int], iv: bytes | Sequence[int]
    ) -> str:
        """An output the platform writes to `url`, encrypted with `key` in `schema`; returns
        `output-<uuid>`. The key is wrapped to the platform key here. `iv` is not used: an
        aes-gcm output is encrypted with a fresh iv each time it is written (one iv with one
        key twice would give the key away), recorded with the file (`client.get_file`)."""
        self.check_metadata()
        as_bytes(iv, "iv")
        with failing("register output file"):
            info = self.client.register_output_file(url, schema, as_bytes(key, "key"))
        return external_id("output", info.id)

    def update_input_file(self, data_id: str, url: str) -> None:
        """Not on this platform: a registered file's URL does not change (its wrapped key is
        bound to the file's id). Register the file again at its new URL."""
        raise TeaclaveException(
            "Failed to update input file (a file's URL does not change on this platform: "
            "register it again with register_input_file)"
        )

    def update_output_file(self, data_id: str, url: str) -> None:
        """Not on this platform: see update_input_file."""
        raise TeaclaveException(
            "Failed to update output file (a file's URL does not change on this platform: "
            "register it again with register_output_file)"
        )

    def _teaclave_function(self, f: Function) -> Message:
        return Message(
            function_id=external_id("function", f.id),
            name=f.name,
            description=f.description,
            owner=DIRECTORY.name(self.url, f.owner_id),
            executor_type=EXECUTOR_TYPE,
            public=f.public,
            arguments=[
                Message(
                    key=a["name"],
                    default_value=a.get("default", ""),
                    allow_overwrite=a.get("overwritable", True),
                )
                for a in f.arguments
            ],
            inputs=[Message(s, description=s.get("description", "")) for s in f.inputs],
            outputs=[Message(s, description=s.get("description", "")) for s in f.outputs],
            user_allowlist=[DIRECTORY.name(self.url, u) for u in f.allowlist],
            usage_quota=f.quota,
        )


def _fixed(f: Function) -> dict[str, Any]:
    """What update_function compares, of a registered function."""
    return {
        "name": f.name,
        "arguments": _comparable("arguments", f.arguments),
        "inputs": _comparable("inputs", f.inputs),
        "outputs": _comparable("outputs", f.outputs),
        "payload": f.sha256,
    }


def _comparable(field: str, value: Any) -> Any:
    if field == "arguments":
        return sorted((a["name"], a.get("default", ""), a.get("overwritable", True)) for a in value)
    if field in ("inputs", "outputs"):
        return sorted((s["name"], bool(s.get("optional", False))) for s in value)
    return value
