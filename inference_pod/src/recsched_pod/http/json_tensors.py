"""Tensor data of OIP v2 JSON bodies, parsed from the body's bytes (pure: numpy and orjson only).

`orjson.loads` on a 1024-item RMC1 query makes ~790,000 Python numbers and `np.asarray` turns
them back into arrays: about 100 ms of one core here, most of it for the integer indices. So:

1. `parse_json_body` cuts each `"data": [...]` array of an input out of the body, parses what is
   left (a few hundred bytes) with orjson, so the document is still checked as a whole, and puts
   an `ArrayText` (the cut text) where the list was;
2. `ArrayText.int64_values` parses an INT64 input's text slice by slice with numpy
   (`json_numbers.int64_numbers`: JSON's rules checked around numpy's parser), without a Python
   object per number, but only when the text is certainly a flat list of JSON integers; anything
   else returns None and the caller goes through `orjson.loads` and its usual checks. FP32 data go
   through orjson in slices (`ArrayText.as_array`): measured, numpy-only float parsing does no
   better (`json_numbers`).

Both steps are conservative: an array is cut only when it is certainly the value of a `"data"` key
and holds no string (no `"`) and no nested list, and if the cut document does not come out as
expected (its markers not exactly at `inputs[i].data`, invalid JSON around them) the whole body is
parsed as before. So no body is accepted that orjson refuses, and errors keep their messages
(an invalid number in a cut array is reported by the caller as invalid JSON).

3. `int64_prefetch` starts a large INT64 input's slices on a small thread pool
   (`json_prefetch`) before the other inputs are parsed: numpy's parser runs without the GIL, so
   on two cores the indices parse in parallel with each other and with the FP32 data (orjson,
   which holds the GIL one slice at a time). `int64_values` collects the slices in order and
   decides exactly as before; when anything fails, the slices not yet started are cancelled.
   (Shorter FP32 slices while the pool works, to hand the GIL over more often, cost more CPU
   for no less wall time in a trial here: 64 KiB against 256 KiB.)
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from recsched_pod.http import json_prefetch
from recsched_pod.http.json_numbers import int64_numbers

_DATA_KEY = b'"data"'
_WHITESPACE = b" \t\n\r"
_INTEGER_BYTES = b"0123456789,-"
# Per process, so a client cannot write a marker into its own body.
_MARKER = "recsched-data-" + secrets.token_hex(8) + "-"
_MINUS_WITHOUT_DIGIT = re.compile(rb"-(?![0-9])")
_INT64 = np.iinfo(np.int64)
# Parsing 256 KiB of numbers takes 1-3 ms here: a decode on a thread holds the GIL (and so the
# event loop) for about that long at a time, whatever the body's size.
SLICE_BYTES = 256 << 10
# INT64 texts from this size are parsed on the pool; below it a thread hop costs more than it saves.
PREFETCH_MIN_BYTES = 64 << 10


@dataclass(frozen=True)
class ArrayText:
    """The text of one JSON array, `[` to `]`, cut out of a request body."""

    text: bytes
    prefetch: json_prefetch.Prefetch = field(
        default_factory=json_prefetch.Prefetch, compare=False, repr=False
    )

    def start_int64_values(self) -> bool:
        """Start parsing the text's slices on the decode pool (once; only a long text)."""
        if len(self.text) < PREFETCH_MIN_BYTES or self.prefetch.started:
            return False
        self.prefetch.start(int64_numbers, _slices(self.text, 1, len(self.text) - 1))
        return True

    def int64_values(self) -> npt.NDArray[np.int64] | None:
        """The integers of a flat array of canonical JSON integers; None for anything else.

        Slice by slice through `json_numbers.int64_numbers` (numpy's parser, JSON's rules checked
        around it without temporaries the text's size), on the decode pool when
        `start_int64_values` ran; a slice it does not take (whitespace, a value past int64,
        anything not an integer) sends the whole text through `_canonical_int64`, which decides
        as before.
        """
        parts = []
        if self.prefetch.started:
            for values in self.prefetch.results():
                if values is None:
                    self.prefetch.cancel()
                    return _canonical_int64(self.text[1:-1])
                parts.append(values)
        else:
            for number, piece in enumerate(_slices(self.text, 1, len(self.text) - 1)):
                if number:
                    time.sleep(0)  # let the event loop's thread take the GIL between slices
                values = int64_numbers(piece)
                if values is None:
                    return _canonical_int64(self.text[1:-1])
                parts.append(values)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def as_array(self) -> npt.NDArray[Any]:
        """`np.asarray(orjson.loads(text))`, parsed in slices when the text is long.

        A cut array is flat and holds no string, so its commas all separate values and slices
        cut at commas parse on their own; the slices' arrays are joined only if they all came out
        of the same dtype (then the whole would have too), otherwise the text is parsed whole.
        Raises `orjson.JSONDecodeError` or numpy's `ValueError`/`OverflowError` as that would.
        """
        slices = _slices(self.text, 1, len(self.text) - 1)
        if len(slices) == 1 or any(not piece.strip(_WHITESPACE) for piece in slices):
            return np.asarray(orjson.loads(self.text))
        arrays = []
        for piece in slices:
            arrays.append(np.asarray(orjson.loads(b"[" + piece + b"]")))
            time.sleep(0)  # let the event loop's thread take the GIL between slices
        if len({array.dtype for array in arrays}) != 1:
            return np.asarray(orjson.loads(self.text))
        return np.concatenate(arrays)


@contextlib.contextmanager
def int64_prefetch(data: Iterable[object]) -> Iterator[None]:
    """Start each long `ArrayText` in `data` (INT64 inputs) on the decode pool for the block;
    on leaving it, cancel whatever was not collected, so a refused query leaves no work queued
    (at most the slices already running finish, each a few ms)."""
    started = [text for text in data if isinstance(text, ArrayText) and text.start_int64_values()]
    try:
        yield
    finally:
        for text in started:
            text.prefetch.cancel()


def parse_json_body(body: bytes | bytearray) -> Any:
    """`orjson.loads(body)`, except that inputs' numeric data arrays come back as `ArrayText`.

    Raises `orjson.JSONDecodeError` exactly when `orjson.loads(body)` would, with its message,
    unless the only invalid part is inside a cut array (the caller finds that when it parses it).
    """
    pieces: list[bytes | bytearray | memoryview] = []
    cuts: list[ArrayText] = []
    view = memoryview(body)
    copied_to = 0
    search_from = 0
    while (key := body.find(_DATA_KEY, search_from)) >= 0:
        search_from = key + len(_DATA_KEY)
        span = _array_after_key(body, key)
        if span is None:
            continue
        start, end = span
        pieces += [view[copied_to:start], b'"%s%d"' % (_MARKER.encode(), len(cuts))]
        cuts.append(ArrayText(bytes(view[start:end])))
        copied_to = search_from = end
    if not cuts:
        return orjson.loads(body)
    pieces.append(view[copied_to:])
    try:
        document = orjson.loads(b"".join(pieces))
    except orjson.JSONDecodeError:
        return orjson.loads(body)  # raises with the message and position of the real body
    if not _put_arrays_back(document, cuts):
        return orjson.loads(body)
    return document


def _array_after_key(body: bytes | bytearray, key: int) -> tuple[int, int] | None:
    """(start, end) of the flat, string-free array that is the value of the `"data"` at `key`."""
    if key > 0 and body[key - 1] == ord("\\"):
        return None  # an escaped quote: inside a string
    colon = _skip_whitespace(body, key + len(_DATA_KEY))
    if colon >= len(body) or body[colon] != ord(":"):
        return None
    start = _skip_whitespace(body, colon + 1)
    if start >= len(body) or body[start] != ord("["):
        return None
    close = body.find(b"]", start)
    if close < 0 or body.find(b"[", start + 1, close) >= 0 or body.find(b'"', start, close) >= 0:
        return None  # unterminated, nested or holding strings: left to orjson
    return start, close + 1


def _skip_whitespace(body: bytes | bytearray, position: int) -> int:
    while position < len(body) and body[position] in _WHITESPACE:
        position += 1
    return position


def _put_arrays_back(document: Any, cuts: list[ArrayText]) -> bool:
    """Replace each marker at `inputs[i].data` by its array; False unless every cut is found
    exactly once there (a `"data"` key elsewhere, a duplicate key, ...)."""
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list):
        return False
    found = 0
    for tensor in inputs:
        data = tensor.get("data") if isinstance(tensor, dict) else None
        if isinstance(data, str) and data.startswith(_MARKER):
            number = data[len(_MARKER) :]
            if not number.isdigit() or int(number) >= len(cuts):
                return False
            tensor["data"] = cuts[int(number)]
            found += 1
    return found == len(cuts)


def _canonical_int64(inner: bytes) -> npt.NDArray[np.int64] | None:
    """Parse `1,-2, 3` (JSON integers, commas, whitespace) in one pass; None if not exactly that.

    numpy's text parser is laxer than JSON (`+1`, `01`, `- 1`, `1, ,2`, a trailing comma; values
    past int64 saturate), so the text is checked around it: allowed bytes only, a number at both
    ends of each slice, no minus without a digit right after it, no empty value between commas, no
    leading zero, no saturated value. What is left (`1,,2`, a space inside a number, `1-2`) makes
    numpy's parser fail.
    """
    whitespace = inner.translate(None, _INTEGER_BYTES)
    if whitespace.translate(None, _WHITESPACE):
        return None  # other bytes: floats, literals, ...
    stripped = inner.strip(_WHITESPACE)
    if whitespace and b",," in stripped.translate(None, _WHITESPACE):
        return None  # numpy takes `1, ,2`
    if b"-" in stripped and _MINUS_WITHOUT_DIGIT.search(stripped):
        return None
    if _has_leading_zero(stripped):
        return None
    parts = []
    for piece in _slices(stripped):
        # numpy takes `1,` and ` ,1`: each slice must start and end with a number.
        first, last = piece.lstrip(_WHITESPACE)[:1], piece.rstrip(_WHITESPACE)[-1:]
        if not (first and first in b"-0123456789" and last and last in b"0123456789"):
            return None
        try:
            parts.append(np.fromstring(piece, dtype=np.int64, sep=","))
        except ValueError:
            return None
        time.sleep(0)  # let the event loop's thread take the GIL between slices
    values = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if values.size == 0 or values.max() == _INT64.max or values.min() == _INT64.min:
        return None  # past int64 (or its very ends): orjson and the usual checks decide
    return values


def _slices(text: bytes, start: int = 0, stop: int | None = None) -> list[bytes]:
    """`text[start:stop]` cut at the first comma after every `SLICE_BYTES` (the commas dropped),
    without copying the whole of it first."""
    stop = len(text) if stop is None else stop
    slices = []
    while (end := text.find(b",", start + SLICE_BYTES, stop)) >= 0:
        slices.append(text[start:end])
        start = end + 1
    slices.append(text[start:stop])
    return slices


def _has_leading_zero(text: bytes) -> bool:
    """True if a number starts with 0 and has more digits (`01`, `-07`), which JSON forbids."""
    codes = np.frombuffer(text, dtype=np.uint8)
    digit = (codes - np.uint8(ord("0"))) < 10
    zero_then_digit = (codes[:-1] == ord("0")) & digit[1:]
    zero_then_digit[1:] &= ~digit[:-2]  # and no digit before the zero
    return bool(zero_then_digit.any())
