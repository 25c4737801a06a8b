"""Reading the control plane's admin endpoint (loopback by default)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from meshctl.errors import AdminUnavailable

__all__ = ["DEFAULT_ADMIN", "AdminUnavailable", "get"]

DEFAULT_ADMIN = "http://127.0.0.1:15014"


def get(admin: str, path: str, **query: str) -> Any:
    url = admin.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        try:
            detail = json.load(e).get("error", "")
        except ValueError:
            detail = ""
        raise AdminUnavailable(f"{url}: HTTP {e.code} {detail}".rstrip()) from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AdminUnavailable(f"cannot reach the control plane at {admin} ({reason}); is it running?") from e
