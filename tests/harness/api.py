"""A small REST client for tests, bound to one gateway.

Success responses look like {"success": true, "data": ...}; the helpers
assert that shape and return `data`. Errors look like {"success": false,
"error": {"code", "message", "field"}}; `expect_error` asserts the HTTP
status and returns the error object.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

# A job that any agent with the `shell` executor can run; tests override fields.
DEFAULT_JOB_FIELDS: dict[str, Any] = {
    "type": "recurring",
    "schedule": "@every 1h",
    "executor": "shell",
    "payload": {"command": ["true"]},
}


class ApiClient:
    """REST calls against one gateway; `http` is the underlying httpx.Client."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request, assert a 2xx status and `"success": true`, and return `data`."""
        response = self.http.request(method, path, **kwargs)
        body = _json_body(response)
        assert response.is_success, f"{method} {path} returned {response.status_code}: {body}"
        assert body.get("success") is True, f"{method} {path} did not succeed: {body}"
        return body.get("data")

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def post(self, path: str, json: Any = None) -> Any:
        return self.call("POST", path, json={} if json is None else json)

    def put(self, path: str, json: Any) -> Any:
        return self.call("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def expect_error(self, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        """Send a request, assert the HTTP `status` and `"success": false`; return `error`."""
        response = self.http.request(method, path, **kwargs)
        body = _json_body(response)
        assert response.status_code == status, (
            f"{method} {path} returned {response.status_code}, expected {status}: {body}"
        )
        assert body.get("success") is False, f"{method} {path} did not report failure: {body}"
        return body["error"]

    def create_job(self, **fields: Any) -> dict[str, Any]:
        """Create a job from DEFAULT_JOB_FIELDS, a unique name and `fields`; return the job."""
        job = {"name": f"job-{uuid.uuid4().hex[:8]}", **DEFAULT_JOB_FIELDS, **fields}
        return self.post("/api/jobs", json=job)

    def history(self, job_id: str, **params: Any) -> list[dict[str, Any]]:
        """Return the runs of a job, newest scheduled time first."""
        return self.get(f"/api/jobs/{job_id}/history", **params)


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"{response.request.method} {response.request.url} returned "
            f"{response.status_code} with a body that is not JSON: {response.text[:500]!r}"
        ) from None
    assert isinstance(body, dict), f"expected a JSON object, got {body!r}"
    return body
