"""A receipt payload of the shape the worker signs, for the receipt tests of both languages."""

PAYLOAD = {  # the shape the worker signs (teaclave_infer/worker/task.py)
    "task_id": "5f0c",
    "function_sha256": "ab" * 32,
    "inputs": {"image": "00" * 16},
    "outputs": {"scores": "11" * 16, "résumé ✓": "22" * 16},
    "return_value": -3,
    "result_kind": "ok",
    "executor": "teaclave-infer/0.1 wasmtime",
    "finished_at": "2025-01-02T03:04:05.123456+00:00",
}
