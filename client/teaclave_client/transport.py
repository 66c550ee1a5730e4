"""HTTP to one platform: a requests session that retries what is safe to retry, the bearer
token, and the platform's problem+json answers raised as the client's typed errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import ServiceUnavailable, api_error

__all__ = ["Transport", "retrying_session"]


def retrying_session(retries: int) -> requests.Session:
    """A session that retries what is safe to retry: a connection that was never made (any
    method), and idempotent requests on a reset or a 502/503/504, with exponential backoff."""
    session = requests.Session()
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.2,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Transport:
    """Requests to the platform at `url`, as `token`'s bearer; a context manager. `session`:
    the requests session to send with (default: `retrying_session(retries)`); it is closed
    with the client."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout  # seconds to wait for an answer (a long-poll adds its own)
        self._http = session if session is not None else retrying_session(retries)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """The response; ServiceUnavailable if there is none, the typed ApiError of a 4xx or
        5xx. `timeout` (connect, read) overrides the client's."""
        headers = dict(kw.pop("headers", {}))
        timeout = kw.pop("timeout", (5.0, self.timeout))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._http.request(
                method, self.url + path, headers=headers, timeout=timeout, **kw
            )
        except requests.RequestException as err:
            reason = type(err).__name__
            if isinstance(err, requests.ConnectionError):
                reason = "connection refused or lost"
            if isinstance(err, requests.Timeout):
                reason = f"no answer within {timeout[1]:g} s"
            raise ServiceUnavailable(f"cannot reach the service at {self.url}: {reason}") from err
        if response.status_code >= 400:
            try:
                problem = response.json()
                if not isinstance(problem, dict):
                    raise ValueError
            except ValueError:
                problem = {"title": response.reason, "detail": response.text[:200]}
            raise api_error(response.status_code, problem)
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._request(method, path, **kw)
        return response.json() if response.content else None

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
        """Every item of a paged listing, 500 a request."""
        offset = 0
        while True:
            page = self._json("GET", path, params={**params, "offset": offset, "limit": 500})
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return
