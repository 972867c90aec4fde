"""A small SigOpt-v1 client for the operator CLI and the demo.

It speaks only the core SigOpt v1 wire format (docs/api.md), so it works against any
SigOpt-compatible API, not just optfleet's server: ids as strings, pagination through the
``before`` marker, no reliance on server extensions. Reads are retried a bounded number of times on
connection errors, 429 and 5xx; writes are not retried because they are not idempotent.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any

import requests

DEFAULT_API_URL = "http://127.0.0.1:8080"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

JsonObject = dict[str, Any]


class ApiError(Exception):
    """The API answered with an error, or could not be reached within the retry bound."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def resolve_api_url(flag: str | None) -> str:
    """Return the API base URL from ``--api-url``, else ``SIGOPT_API_URL``, else the local default.

    A trailing slash or ``/v1`` suffix is removed: the official client's convention is a base URL
    without them.
    """
    url = (flag or os.environ.get("SIGOPT_API_URL") or DEFAULT_API_URL).rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def resolve_api_token(flag: str | None) -> str:
    """Return the API token from ``--api-token``, else ``SIGOPT_API_TOKEN``."""
    token = flag or os.environ.get("SIGOPT_API_TOKEN")
    if not token:
        raise ApiError(
            "no API token: set SIGOPT_API_TOKEN (or pass --api-token); "
            "`optfleet token create` makes one for a local server"
        )
    return token


class SigOptClient:
    """Typed access to the endpoints the CLI uses. ``api_url`` has no ``/v1`` suffix."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        read_attempts: int = 4,
        page_size: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._timeout_s = timeout_s
        self._read_attempts = read_attempts
        self._page_size = page_size  # None: the server's default (1000 on SigOpt)
        self._session = session or requests.Session()
        self._session.auth = (token, "")
        self._session.headers["User-Agent"] = "optfleet-cli"

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._session.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: JsonObject | None = None,
    ) -> JsonObject:
        url = f"{self.api_url}/v1/{path.lstrip('/')}"
        attempts = self._read_attempts if method == "GET" else 1
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                # Exponential backoff with full jitter, bounded by the attempt count.
                time.sleep(random.uniform(0, min(2.0, 0.1 * 2**attempt)))  # noqa: S311 - retry jitter, not security
            try:
                response = self._session.request(
                    method, url, params=params, json=body, timeout=self._timeout_s
                )
            except requests.RequestException as exc:
                last_problem = f"cannot reach {self.api_url}: {type(exc).__name__}"
                continue
            if response.status_code in RETRYABLE_STATUS and attempt + 1 < attempts:
                last_problem = f"HTTP {response.status_code}"
                continue
            return self._decode(method, url, response)
        raise ApiError(f"{method} {url} failed after {attempts} attempt(s): {last_problem}")

    @staticmethod
    def _decode(method: str, url: str, response: requests.Response) -> JsonObject:
        if response.status_code == 204:
            return {}
        try:
            payload = response.json()
        except ValueError:
            payload = {"message": response.text[:300]}
        if not response.ok:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise ApiError(
                f"{method} {url} → HTTP {response.status_code}: {message or payload}",
                status=response.status_code,
            )
        if not isinstance(payload, dict):
            raise ApiError(f"{method} {url}: expected a JSON object, got {type(payload).__name__}")
        return payload

    def _paginate(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> Iterator[JsonObject]:
        """Yield every item of a newest-first list, following ``paging.before`` to the end."""
        query: dict[str, str | int] = dict(params or {})
        if self._page_size is not None:
            query["limit"] = self._page_size
        while True:
            page = self._request("GET", path, params=query)
            data = page.get("data") or []
            yield from data
            marker = (page.get("paging") or {}).get("before")
            if not data or not marker:
                return
            query["before"] = marker

    # Experiments
    def create_experiment(self, spec: JsonObject) -> JsonObject:
        """POST /experiments with a validated spec; returns the new Experiment."""
        return self._request("POST", "experiments", body=spec)

    def experiment(self, experiment_id: str) -> JsonObject:
        """GET /experiments/{id}, progress included."""
        return self._request("GET", f"experiments/{experiment_id}")

    def experiments(self) -> list[JsonObject]:
        """Every experiment the token can see, newest first."""
        return list(self._paginate("experiments"))

    def delete_experiment(self, experiment_id: str) -> None:
        """DELETE /experiments/{id}."""
        self._request("DELETE", f"experiments/{experiment_id}")

    # Suggestions and observations
    def open_suggestions(self, experiment_id: str) -> list[JsonObject]:
        """Every open suggestion of the experiment, across all pages."""
        return list(self._paginate(f"experiments/{experiment_id}/suggestions", {"state": "open"}))

    def open_suggestion_count(self, experiment_id: str) -> int:
        """The number of open suggestions (``limit=0`` reads only ``count``)."""
        page = self._request(
            "GET", f"experiments/{experiment_id}/suggestions", params={"state": "open", "limit": 0}
        )
        return int(page.get("count") or 0)

    def suggestion(self, experiment_id: str, suggestion_id: str) -> JsonObject:
        """GET one suggestion."""
        return self._request("GET", f"experiments/{experiment_id}/suggestions/{suggestion_id}")

    def create_suggestion(
        self, experiment_id: str, metadata: JsonObject | None = None
    ) -> JsonObject:
        """POST a suggestion (used by tests and tools; the agent has its own client)."""
        body: JsonObject = {} if metadata is None else {"metadata": metadata}
        return self._request("POST", f"experiments/{experiment_id}/suggestions", body=body)

    def observations(self, experiment_id: str) -> list[JsonObject]:
        """Every observation of the experiment, newest first, across all pages."""
        return list(self._paginate(f"experiments/{experiment_id}/observations"))

    def best_assignments(self, experiment_id: str) -> list[JsonObject]:
        """GET /experiments/{id}/best_assignments (all pages)."""
        return list(self._paginate(f"experiments/{experiment_id}/best_assignments"))


def client_from_args(
    api_url: str | None, api_token: str | None, timeout_s: float = 10.0
) -> SigOptClient:
    """Build a client from CLI flags with the environment as fallback."""
    return SigOptClient(resolve_api_url(api_url), resolve_api_token(api_token), timeout_s=timeout_s)
