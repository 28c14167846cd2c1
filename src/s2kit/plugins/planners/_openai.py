"""A small client for OpenAI-compatible chat completions (vLLM, llama.cpp, Ollama, hosted APIs).

Standard library only (``urllib``): a planner runs inside the control loop,
and a robot-side install should not need an HTTP stack. Every failure is a
`ChatError` with a kind (``timeout``, ``connection``, ``http``,
``protocol``) and a message that never holds the API key.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["ChatClient", "ChatError"]

#: HTTP statuses worth another try: the server is busy or restarting.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class ChatError(Exception):
    """A request that got no usable reply."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind in ("timeout", "connection") or self.kind == "http" and self.status in RETRY_STATUS


class ChatClient:
    """POSTs chat-completion requests to ``{base_url}/chat/completions``.

    The key is read from the environment variable ``api_key_env`` at each
    request (so it can be rotated without a restart) and sent only in the
    ``Authorization`` header; `redact` scrubs it from any text that leaves.
    Timeouts, refused connections and the statuses in `RETRY_STATUS` are
    retried ``retries`` times with exponential backoff.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 20.0,
        retries: int = 1,
        backoff: float = 0.5,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _key(self) -> str | None:
        return (os.environ.get(self.api_key_env) or None) if self.api_key_env else None

    def redact(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The server's JSON reply to ``body``; ChatError after the last failed try."""
        data = json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            try:
                return self._post(data)
            except ChatError as err:
                if not err.retryable or attempt == self.retries:
                    if attempt:
                        err.args = (f"{err.args[0]} (after {attempt + 1} tries)",)
                    raise
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _post(self, data: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:500].decode("utf-8", "replace").strip()
            raise ChatError("http", self.redact(f"{self.url} answered HTTP {err.code}: {detail or err.reason}"), err.code) from None
        except TimeoutError:
            raise ChatError("timeout", f"{self.url} did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):  # socket.timeout is TimeoutError
                raise ChatError("timeout", f"{self.url} did not answer within {self.timeout:g} s") from None
            raise ChatError("connection", self.redact(f"cannot reach {self.url}: {err.reason}")) from None
        except (ConnectionError, OSError) as err:  # reset or closed mid-reply
            raise ChatError("connection", self.redact(f"connection to {self.url} failed: {err}")) from None
        try:
            reply = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ChatError("protocol", f"{self.url} sent a reply that is not JSON: {raw[:200]!r}") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list) or not reply["choices"]:
            raise ChatError("protocol", f"{self.url} sent no choices: {str(reply)[:200]}")
        return reply
