"""What a browser may do with what this service sends: the Content-Security-Policy of every
response, and the relaxed one the docs pages need.

The web page and its assets are same-origin files with no inline script or style, so one strict
policy covers them and every API answer. Swagger UI's page starts the bundle with one inline
script: it is allowed by its sha256, computed from the page actually sent (the script names the
schema URL, which follows the root path). ReDoc (styled-components) and Swagger UI write
`<style>` elements at run time, and ReDoc's search runs in a `blob:` worker: those two
allowances are on the docs pages only.
"""

from __future__ import annotations

import base64
import hashlib
import re

CSP_HEADER = "content-security-policy"
_COMMON = ("object-src 'none'", "base-uri 'none'", "form-action 'self'",
           "frame-ancestors 'none'")
PAGE_POLICY = "; ".join(("default-src 'self'", "script-src 'self'", "style-src 'self'",
                         "img-src 'self' data: blob:", "connect-src 'self'", *_COMMON))
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def script_hashes(html: str) -> list[str]:
    """CSP source expressions (`'sha256-…'`) for each inline `<script>` of `html`."""
    return ["'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
            for body in _INLINE_SCRIPT.findall(html)]


def docs_policy(html: str) -> str:
    """The policy of a docs page: its own inline scripts by hash, run-time styles, a blob
    worker, images as data URLs; nothing from another origin."""
    scripts = " ".join(["'self'", *script_hashes(html)])
    return "; ".join(("default-src 'self'", f"script-src {scripts}",
                      "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
                      "worker-src 'self' blob:", "connect-src 'self'", *_COMMON))
