"""A facade with the names and signatures of Apache Teaclave's Python SDK (`teaclave.py`), so
that scripts written for Teaclave run here with their import and their service addresses
changed:

    from teaclave_client.teaclave import AuthenticationService, FrontendService, FunctionArgument

    with AuthenticationService("https://platform.example").connect() as auth:
        token = auth.user_login("user0", password)
    client = FrontendService("https://platform.example").connect()
    client.metadata = {"id": "user0", "token": token}
    function_id = client.register_function("add", "adds", "wamr", payload=list(wasm),
                                           arguments=[FunctionArgument("a"), FunctionArgument("b")])
    ...
    result = client.get_task_result(task_id)   # b"7"

It is a thin layer over `teaclave_client.Client` (each service's `client`), which it maps
Teaclave's calls onto. What differs, each said where it applies: a URL where Teaclave took an
address, attestation arguments accepted and ignored (there is no SGX enclave here: an
`AttestationNotAvailable` warning says so, an `InsecureConnection` warning a plain http:// URL
to another host; `pinned_keys` pins the platform's keys); file keys wrapped to the platform's
published key before they leave the process; REST instead of Teaclave's RPC; users named by id
on the platform (the facade translates the names it has seen logged in or registered in this
process);
ids shown as Teaclave's `function-<uuid>`, accepted in that form or as the platform's hex; only
WebAssembly (`wamr`) functions. Every call raises TeaclaveException on failure, the client's
typed error as its cause.
"""

from ._auth import AuthenticationService
from ._service import TeaclaveService
from ._tasks import FrontendService
from ._types import (
    AttestationNotAvailable,
    DataMap,
    FunctionArgument,
    FunctionInput,
    FunctionOutput,
    InsecureConnection,
    Message,
    OwnerList,
    TaskStatus,
    TeaclaveException,
)

__all__ = [
    "AttestationNotAvailable",
    "AuthenticationService",
    "DataMap",
    "FrontendService",
    "FunctionArgument",
    "FunctionInput",
    "FunctionOutput",
    "InsecureConnection",
    "Message",
    "OwnerList",
    "TaskStatus",
    "TeaclaveException",
    "TeaclaveService",
]
