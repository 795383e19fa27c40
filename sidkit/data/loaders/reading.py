"""Reading primitives shared by the loaders: rows are decoded one at a time, never dropped silently.

* :class:`Rejects` collects rows a loader could not parse (file, 1-based row, column, reason, raw
  record) and counts every record read per table, so ``kept + rejected = read`` can be checked.
* :func:`lines` yields ``(row, text)``: each physical line is decoded on its own, so a bad byte
  rejects that row (and names it) instead of aborting the file or blaming a later row. A UTF-8 BOM
  is dropped. A ``.gz`` file that is not gzip, or is truncated, is one :class:`DataFormatError`
  naming the file (and the row where it broke off).
* Numbers are checked to be finite, whole where they must be, and within 64 bits.
"""

from __future__ import annotations

import errno
import gzip
import os
import zlib
from pathlib import Path
from typing import Any, Iterator

from sidkit.data.schema import rejected_frame
from sidkit.errors import DataFormatError

INT64_MAX = 2**63 - 1
PARSE_ERRORS = (ValueError, SyntaxError, TypeError, RecursionError, MemoryError)


class Rejects:
    """Rows a loader could not parse, and how many records it read per table."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.read: dict[str, int] = {}

    def count(self, table: str, n: int = 1) -> None:
        self.read[table] = self.read.get(table, 0) + n

    def add(self, table: str, file: Path | str, row: int | None, column: str | None, reason: str, record: Any,
            field: int | None = None) -> None:
        self.rows.append({"table": table, "file": str(file), "row": row, "field": field, "column": column,
                          "check": "parse", "reason": reason, "record": str(record)[:500]})

    def frame(self):
        return rejected_frame(self.rows)


def require(path: Path, what: str) -> Path:
    """``path`` if it is a readable regular file or folder; else an error that says what is wrong."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataFormatError(str(path), None, None, f"{what} is a symbolic link loop") from None
        if path.is_symlink():
            raise DataFormatError(str(path), None, None, f"{what} is a broken symbolic link "
                                                         f"(to {os.readlink(path)})") from None
        raise DataFormatError(str(path), None, None, f"{what} not found") from None
    if not (path.is_file() or path.is_dir()):
        raise DataFormatError(str(path), None, None, f"{what} is not a regular file")
    return path


def _open_binary(path: Path):
    if path.suffix != ".gz":
        return open(path, "rb")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        raise DataFormatError(str(path), None, None, "the file name ends in .gz but the file is not gzip-compressed")
    return gzip.open(path, "rb")


def lines(path: Path, rejects: Rejects | None = None, table: str = "", encoding: str = "utf-8",
          empty_ok: bool = False) -> Iterator[tuple[int, str]]:
    """(1-based row, line without its line break). Undecodable rows are rejected (or raise without ``rejects``)."""
    row = 0
    try:
        with _open_binary(path) as fh:
            for raw in fh:
                row += 1
                if row == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # a UTF-8 byte-order mark is not part of the header
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    reason = f"not valid {encoding} text (byte 0x{raw[exc.start]:02x} at position {exc.start + 1})"
                    if rejects is None:
                        raise DataFormatError(str(path), row, None, reason) from None
                    rejects.count(table)
                    rejects.add(table, path, row, None, reason, raw[:500])
                    continue
                yield row, text.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFormatError(str(path), row + 1, None, f"the gzip stream is corrupt or truncated ({exc}); "
                                                        f"{row} row(s) were read before it broke off") from None
    if row == 0 and not empty_ok:
        raise DataFormatError(str(path), None, None, "the file is empty")


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, int):
        out = value
    else:
        f = float(value)
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        if not f.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        out = int(value) if isinstance(value, str) and value.lstrip("-+").isdigit() else int(f)
    if not -INT64_MAX - 1 <= out <= INT64_MAX:
        raise ValueError(f"{value!r} is outside the 64-bit integer range")
    return out


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    f = float(value)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return f


def image_for(image_dir: Path | None, item_id: str, suffixes=(".jpg", ".jpeg", ".png")) -> str | None:
    """The item's image file in ``image_dir``, if any. An id that would leave the folder has none."""
    if image_dir is None or not item_id or "/" in item_id or "\\" in item_id or item_id in (".", ".."):
        return None
    root = image_dir.resolve()
    for s in suffixes:
        p = (image_dir / f"{item_id}{s}").resolve()
        if p.parent == root and p.is_file():
            return str(p)
    return None
