"""INT64 tensor data parsed from a slice of JSON text, JSON's rules checked around numpy's parser
(pure: numpy only).

`int64_numbers` takes one slice of a flat JSON integer array, `12,-3,0` without brackets, and
returns its values, or None for anything that is not certainly such a list (whitespace, floats,
literals, a leading zero, `+1`, an empty value, a value past int64). The caller then parses the
text the previous way, so a None never changes what is accepted or refused, only how fast.

numpy's text parser (`np.fromstring(sep=",")`) makes the values without a Python object per
number, but it is laxer than JSON, so the slice is checked around it with byte-level operations
that allocate nothing per query: the work arrays are per thread and reused (on this machine a
fresh 256 KiB temporary can cost more in page faults than the arithmetic on it). Against the
previous checks over the whole text this saves a few percent of the decode at most; the time left
is numpy's parser's own.

Measured and not used (`bench/json_number_parsers.py`, docs/benchmarks/json_decode.md): a fully
vectorised digit parser (comma positions, 8 bytes per number combined by SWAR multiply-and-shift
steps) and a vectorised float parser (mantissa digits and a power of ten, Clinger's exact fast
path) each took as much CPU time as the C parser they would replace (numpy's for integers,
orjson's for floats), so FP32 data still go through orjson in slices.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

_DIGITS = b"0123456789"
_COMMA, _ZERO = ord(","), ord("0")
# A minus must start a number: after a comma (or first) and before a digit.
_MISPLACED_MINUS = re.compile(rb"-(?![0-9])|[0-9-]-")
_INT64 = np.iinfo(np.int64)

IntArray = npt.NDArray[np.int64]


class _Scratch(threading.local):
    """Work arrays by name, grown as needed and reused by the same thread (up to `KEPT_SIZE`
    elements: a larger one, from a text without commas, is made for the call and dropped)."""

    KEPT_SIZE = 1 << 20

    def __init__(self) -> None:
        self.arrays: dict[str, npt.NDArray[Any]] = {}

    def get(self, name: str, size: int, dtype: type[Any]) -> npt.NDArray[Any]:
        if size > self.KEPT_SIZE:
            return np.empty(size, dtype)
        array = self.arrays.get(name)
        if array is None or array.size < size:
            array = np.empty(max(size, 4096) * 5 // 4, dtype)
            self.arrays[name] = array
        return array[:size]


_SCRATCH = _Scratch()


def int64_numbers(piece: bytes) -> IntArray | None:
    """The integers of `12,-3,0` (JSON integers and commas only); None for anything else."""
    if not piece or piece[-1] not in _DIGITS or piece[0] == _COMMA:
        return None  # empty, or an empty value at an end: numpy would take `1,` and `,1`
    codes = np.frombuffer(piece, np.uint8)
    size = codes.size
    digit = _SCRATCH.get("digit", size, np.bool_)
    np.less(np.subtract(codes, _ZERO, out=_SCRATCH.get("shifted", size, np.uint8)), 10, out=digit)
    comma = _SCRATCH.get("comma", size, np.bool_)
    np.equal(codes, _COMMA, out=comma)
    commas = int(np.count_nonzero(comma))
    minus = piece.count(b"-") if b"-" in piece else 0
    if int(np.count_nonzero(digit)) + commas + minus != size:
        return None  # other bytes: whitespace, floats, literals, `+1`, ...
    if minus and _MISPLACED_MINUS.search(piece):
        return None
    if _has_leading_zero(codes, digit):
        return None
    try:
        values = np.fromstring(piece, dtype=np.int64, sep=",")
    except ValueError:
        return None  # `1,,2` (numpy 1.x stops there with a warning: the count below sees it)
    if values.size != commas + 1:
        return None
    if values.max() == _INT64.max or values.min() == _INT64.min:
        return None  # past int64 (or its very ends): numpy saturates, orjson decides
    return values


def _has_leading_zero(codes: npt.NDArray[np.uint8], digit: npt.NDArray[np.bool_]) -> bool:
    """A number that starts with 0 and has another digit (`01`, `-07`), which JSON forbids."""
    size = codes.size
    if size < 2:
        return False
    leading = _SCRATCH.get("leading", size - 1, np.bool_)
    np.equal(codes[:-1], _ZERO, out=leading)  # a zero ...
    leading &= digit[1:]  # ... with a digit after it ...
    not_digit = _SCRATCH.get("not_digit", size - 2, np.bool_)
    np.logical_not(digit[:-2], out=not_digit)
    leading[1:] &= not_digit  # ... and none before it
    return bool(leading.any())
