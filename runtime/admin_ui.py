"""The web UI on the admin port:

    GET /ui, /ui/, /ui/index.html       the page
    GET /ui/app.js, /ui/views_ops.js     its scripts (ES modules: app.js imports views_ops.js)
    GET /ui/style.css                    its style sheet

Four static files in runtime/ui/, shipped in the wheel and served as they are: no build
step, nothing fetched from elsewhere, so a fresh clone or an offline install shows it.
The page reads and acts through the admin API itself (same origin, the same token), so
this module only serves files. Only the names listed in ASSETS are served: a path is
never joined with what the request says, so nothing outside runtime/ui/ can be reached.
"""

from __future__ import annotations

from pathlib import Path

from runtime.http import HttpError, Send

UI_DIR = Path(__file__).resolve().parent / "ui"

ASSETS = {
    "index.html": b"text/html; charset=utf-8",
    "app.js": b"text/javascript; charset=utf-8",
    "views_ops.js": b"text/javascript; charset=utf-8",
    "style.css": b"text/css; charset=utf-8",
}

# The page runs only its own script and talks only to its own origin; it cannot be framed
# by another site (its buttons cancel and kill invocations).
_SECURITY = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                 b"form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Revalidated on every load: a server upgrade shows its own UI, never a cached older one.
    (b"cache-control", b"no-cache"),
]


async def handle(parts: list[str], method: str, send: Send) -> None:
    """Serve `parts` (the admin path split on "/", decoded; parts[0] == "ui")."""
    if method not in ("GET", "HEAD"):
        raise HttpError(405, f"method {method} not allowed on /ui: GET")
    # "/ui" and "/ui/" both arrive as ["ui"]; the page names its assets as /ui/..., so it
    # works from either without a redirect.
    name = "index.html" if len(parts) == 1 else parts[1] if len(parts) == 2 else ""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise HttpError(404, f"no UI asset /{'/'.join(parts)}: the UI is at /ui")
    body = (UI_DIR / name).read_bytes()  # a few KiB from the package: not worth a thread
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *_SECURITY]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
