"""Strict JSON for everything clipdesk writes: NaN/inf become null, undecodable file names text.

A floor below both `atomic` (which writes JSON files) and `export` (which builds result rows):
both import it, and neither imports the other for it.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from typing import Any

__all__ = ["PATH_BYTES_KEY", "exact_bytes", "json_safe", "path_from_record", "path_record",
           "valid_unicode"]

PATH_BYTES_KEY = "path_bytes_b64"


def json_safe(value: Any) -> Any:
    """Strict JSON: NaN/inf become null, numpy scalars plain numbers, undecodable file-name
    bytes `\\xNN` text, so every consumer can parse what clipdesk writes.

    `\\xNN` text is for reading, and ambiguous (a name may really contain a backslash), so an
    object whose `path` is not valid UTF-8 also gets `path_bytes_b64`: the name's exact bytes.
    """
    if isinstance(value, dict):
        safe = {json_safe(k): json_safe(v) for k, v in value.items()}
        exact = exact_bytes(value["path"]) if "path" in value else None
        if exact is not None:
            safe.setdefault(PATH_BYTES_KEY, exact)
        return safe
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, str):
        return valid_unicode(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return json_safe(str(value))
    return number if math.isfinite(number) else None


def valid_unicode(text: str) -> str:
    """`text` itself when it is valid Unicode, else with each undecodable byte as `\\xNN`."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def exact_bytes(path: Any) -> str | None:
    """Base64 of a file name's bytes when they are not valid UTF-8 (else None)."""
    if not isinstance(path, (bytes, str, os.PathLike)):
        return None
    try:
        raw = os.fsencode(path)  # str: surrogate escapes back to the bytes the file system gave
    except UnicodeEncodeError:  # a lone surrogate no file system produced: no bytes to keep
        return None
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")


def path_record(path: str | os.PathLike) -> str | dict[str, str]:
    """A path for a JSON list clipdesk reads back: the plain text when it is valid UTF-8, else
    `{"path": readable text, "path_bytes_b64": exact bytes}` (strict JSON either way)."""
    text = os.fspath(path)
    exact = exact_bytes(text)
    return {"path": valid_unicode(os.fsdecode(text)), PATH_BYTES_KEY: exact} if exact else text


def path_from_record(record: Any) -> str | None:
    """The exact path back from `path_record` (or from a result row); None if it holds none."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        return None
    if isinstance(record.get(PATH_BYTES_KEY), str):
        try:
            return os.fsdecode(base64.b64decode(record[PATH_BYTES_KEY], validate=True))
        except (binascii.Error, ValueError):
            return None
    return record["path"] if isinstance(record.get("path"), str) else None
