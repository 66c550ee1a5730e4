"""Task arguments reach a function as RFC 8785 JSON (abi.argument_text): one that has no such
form (NaN, an infinity, an integer beyond 2**53) is refused when the task is created, naming the
argument, rather than failing a worker later."""

from __future__ import annotations

import json

import pytest
from guests import guest
from platform_helpers import Platform
from service_helpers import assert_problem


@pytest.mark.parametrize("value", ["NaN", "-Infinity", str(2**60), f'[1, {{"k": {2**53}}}]'])
def test_an_argument_with_no_canonical_json_is_refused_at_creation(client, value: str) -> None:
    p = Platform(client)
    fid = p.register(
        guest("(i32.const 0)"), inputs=[], outputs=[], arguments=[{"name": "x", "default": "0"}]
    )
    body = json.dumps({"function_id": fid}).removesuffix("}") + f', "arguments": {{"x": {value}}}}}'
    headers = {**p.auth["do1"], "Content-Type": "application/json"}
    assert_problem(client.post("/v1/tasks", headers=headers, content=body), 422, "x: ")
    fine = {"function_id": fid, "arguments": {"x": {"b": [1.5, None], "a": 2**53 - 1}}}
    assert client.post("/v1/tasks", headers=p.auth["do1"], json=fine).status_code == 201
