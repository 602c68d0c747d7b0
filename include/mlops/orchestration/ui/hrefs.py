"""Every link the platform's pages and task buttons take from a record goes through here.

A record's field is data someone else wrote (a task, a tool, a configured URL). In ``href`` it
may only become an http(s) URL or a relative link to the lake viewer; anything else (a
``javascript:``, ``data:`` or ``vbscript:`` URL, a protocol-relative ``//host``, a path out of
the lake) becomes no link at all.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

LAKE_VIEW_PREFIX = "/mlops/lake/view?path="
WEB_SCHEMES = frozenset({"http", "https"})


def safe_lake_path(path: str) -> str:
    """A path inside the lake, or ValueError: no parent steps, schemes, other buckets or hidden files."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in {"..", "."} or p.startswith(("~", ".")) or ":" in p or "\\" in p for p in parts):
        raise ValueError(f"not a path inside the lake: {path!r}")
    return "/".join(parts)


def lake_view_url(rel: str) -> str:
    """The lake viewer's link to a path inside the lake ("" if the path leaves the lake)."""
    try:
        return LAKE_VIEW_PREFIX + quote(safe_lake_path(rel))
    except ValueError:
        return ""


def browser_url(value: object, lake_root_uri: str) -> str:
    """A link a browser may open for a record's field; "" when there is none or it is not allowed.

    Allowed: an http(s) URL with a host; a lake URI under ``lake_root_uri`` (becomes a lake viewer
    link); a lake viewer link to a path inside the lake. Browsers ignore leading spaces and
    control characters in a URL, so a value holding any is refused rather than cleaned.
    """
    if not isinstance(value, str) or not value or any(ch <= " " or ch == "\x7f" for ch in value):
        return ""
    root = lake_root_uri.rstrip("/") + "/"
    if value.startswith(root):
        return lake_view_url(value[len(root) :])
    if value.startswith(LAKE_VIEW_PREFIX):
        return lake_view_url(unquote(value[len(LAKE_VIEW_PREFIX) :]))
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return ""
    if parts.scheme.lower() in WEB_SCHEMES and parts.netloc and "\\" not in value:
        return value
    return ""
