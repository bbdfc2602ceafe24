"""Numpy-only parsers for JSON number text, measured against the C parsers the pod uses.

Two prototypes, kept here so the measurement behind `json_numbers`' choice can be repeated:

* integers: comma positions give each number's end; the 8 bytes before it are loaded as one
  uint64 (two aligned loads and shifts), the bytes that are not its digits masked off, and the
  ASCII digits combined by three multiply-and-shift steps (simdjson's `parse_eight_digits`);
* floats: the mantissa digits as an integer m (at most 15 digits) and a power of ten k; for
  |k| <= 22, m * 10**k (or m / 10**-k) is one correctly rounded float64 operation on exact
  operands (Clinger's fast path), so it equals orjson's value.

Both answer None for anything else (their tests of exactness ran in this file's history; the
`main` below checks each result against the reference before timing it). Against numpy's
`fromstring` (integers) and orjson + np.asarray (floats), one 256 KiB slice at a time, in thread
CPU time, interleaved rounds. Writes the section "## Numpy-only number parsers" of
docs/benchmarks/json_decode.md. Run: `flock /tmp/recsched-bench.lock .venv/bin/python
bench/json_number_parsers.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from json_decode import ROOT, json_query, replace_section

from recsched_pod.models import model_spec

SECTION = "## Numpy-only number parsers"

_U64 = np.uint64
_ASCII_ZEROS = _U64(0x3030303030303030)
_COMMA, _MINUS, _PLUS, _DOT, _ZERO = (ord(char) for char in ",-+.0")
_NUMBER_BYTES = b"0123456789,-+.eE"
_INTEGER_BYTES = b"0123456789,-"
# Bytes of zeros before and after the text, so every 8-byte window and its aligned words exist.
_PAD = 24
# Keep only the high `count` bytes of a window (the digits right before its end), count 0..8.
_KEEP_HIGH = np.array([(~0 << (8 * (8 - count))) & (2**64 - 1) for count in range(9)], _U64)
_POWERS_OF_TEN = 10.0 ** np.arange(23)
_INTEGER_POWERS_OF_TEN = 10 ** np.arange(16, dtype=_U64)
MAX_MANTISSA_DIGITS = 15  # < 2**53: exact in a float64
MAX_EXPONENT = 22  # 10**22 is the largest power of ten exact in a float64

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class _Scratch(threading.local):
    """Named work arrays, grown as needed and reused by the same thread."""

    def __init__(self) -> None:
        self.arrays: dict[str, npt.NDArray[Any]] = {}

    def get(self, name: str, size: int, dtype: type[Any]) -> npt.NDArray[Any]:
        array = self.arrays.get(name)
        if array is None or array.size < size:
            array = np.empty(max(size, 1024) * 5 // 4, dtype)
            self.arrays[name] = array
        return array[:size]


_SCRATCH = _Scratch()


class _Text:
    """One chunk of number text: its bytes, byte classes and the numbers' bounds."""

    def __init__(self, text: bytes) -> None:
        size = len(text)
        self.size = size
        padded = _SCRATCH.get("padded", _PAD + size + _PAD + (-size) % 8, np.uint8)
        padded[:_PAD] = 0
        padded[_PAD + size :] = 0
        self.codes = padded[_PAD : _PAD + size]
        self.codes[:] = np.frombuffer(text, np.uint8)
        self.words = padded.view(_U64)
        comma = _SCRATCH.get("comma", size, np.bool_)
        np.equal(self.codes, _COMMA, out=comma)
        self.comma = comma
        count = int(np.count_nonzero(comma)) + 1
        self.count = count
        # bounds[k] is the comma before number k (-1 for the first), bounds[count] the end.
        bounds = _SCRATCH.get("bounds", count + 1, np.intp)
        bounds[0] = -1
        bounds[-1] = size
        bounds[1:-1] = np.flatnonzero(comma)
        self.bounds = bounds

    def byte_mask(self, name: str, code: int) -> npt.NDArray[np.bool_]:
        mask = _SCRATCH.get(name, self.size, np.bool_)
        np.equal(self.codes, code, out=mask)
        return mask

    def digit_mask(self) -> npt.NDArray[np.bool_]:
        shifted = _SCRATCH.get("shifted", self.size, np.uint8)
        np.subtract(self.codes, _ZERO, out=shifted)
        digit = _SCRATCH.get("digit", self.size, np.bool_)
        np.less(shifted, 10, out=digit)
        return digit

    def lengths(self) -> IntArray:
        lengths = _SCRATCH.get("lengths", self.count, np.intp)
        np.subtract(self.bounds[1:], self.bounds[:-1], out=lengths)
        lengths -= 1
        return lengths

    def digits_before(self, name: str, ends: IntArray, counts: IntArray) -> npt.NDArray[Any]:
        """The value of the `counts[k]` (0..16) digits right before position `ends[k]`."""
        values = self._eight_digits_before(name, ends, np.minimum(counts, 8), shift=0)
        if counts.size and int(counts.max()) > 8:
            high = self._eight_digits_before(
                name + "_high", ends, np.clip(counts - 8, 0, 8), shift=8
            )
            high *= _U64(100_000_000)
            values += high
        return values

    def _eight_digits_before(
        self, name: str, ends: IntArray, counts: IntArray, shift: int
    ) -> npt.NDArray[Any]:
        count = ends.size
        start = _SCRATCH.get("start", count, np.intp)
        np.add(ends, _PAD - 8 - shift, out=start)
        index = _SCRATCH.get("index", count, np.intp)
        np.right_shift(start, 3, out=index)
        offset = _SCRATCH.get("offset", count, np.intp)
        np.bitwise_and(start, 7, out=offset)
        offset <<= 3
        bits = offset.view(_U64)
        low = _SCRATCH.get(name, count, _U64)
        np.take(self.words, index, out=low)
        low >>= bits
        index += 1
        high = _SCRATCH.get("high_word", count, _U64)
        np.take(self.words, index, out=high)
        np.subtract(_U64(64), bits, out=bits)
        high <<= bits  # a shift by 64 gives 0 in numpy
        low |= high
        # Now low holds the window's 8 bytes, earliest lowest: keep the digits, as values 0..9.
        np.take(_KEEP_HIGH, counts, out=high)
        low &= high
        high &= _ASCII_ZEROS
        low -= high
        low *= _U64(2561)  # 10 * 256 + 1: pairs of digits
        low >>= _U64(8)
        low &= _U64(0x00FF00FF00FF00FF)
        low *= _U64(6553601)  # 100 * 65536 + 1: groups of four
        low >>= _U64(16)
        low &= _U64(0x0000FFFF0000FFFF)
        low *= _U64(42949672960001)  # 10000 * 2**32 + 1: eight digits
        low >>= _U64(32)
        return low


def int64_numbers(text: bytes) -> IntArray | None:
    """The integers of `1,-2,30` (JSON integers of at most 16 digits, commas); None otherwise."""
    if not text or text.translate(None, _INTEGER_BYTES):
        return None
    chunk = _Text(text)
    lengths = chunk.lengths()
    if int(lengths.min()) < 1:
        return None  # an empty value: `1,,2`, a leading or trailing comma
    digit = chunk.digit_mask()
    minus = chunk.byte_mask("minus", _MINUS) if b"-" in text else None
    if minus is not None and _misplaced_minus(chunk, minus, digit):
        return None
    if _leading_zero(chunk, digit, minus):
        return None
    ends = chunk.bounds[1:]
    if minus is None:
        counts = lengths
        negative = None
    else:
        negative = np.take(chunk.codes, chunk.bounds[:-1] + 1) == _MINUS
        counts = lengths - negative
    if int(counts.max()) > 16:
        return None
    values = chunk.digits_before("digits", ends, counts).view(np.int64).copy()
    if negative is not None:
        np.negative(values, out=values, where=negative)
    return values


def float64_numbers(text: bytes) -> FloatArray | None:
    """The numbers of `0.5,-1e-7,3` as float64 (what orjson and np.asarray make); None when the
    text holds anything else, no float at all, or a number the fast path does not take."""
    if not text or text.translate(None, _NUMBER_BYTES):
        return None
    has_exponents = b"e" in text or b"E" in text
    if not has_exponents and b"." not in text:
        return None  # all integers: np.asarray would make int64
    chunk = _Text(text)
    if int(chunk.lengths().min()) < 1:
        return None  # an empty value
    codes = chunk.codes
    starts = chunk.bounds[:-1] + 1
    ends = chunk.bounds[1:]
    negative = np.take(codes, starts) == _MINUS if b"-" in text else None
    mantissa_start = starts if negative is None else starts + negative
    if has_exponents:
        exponents = _exponents(chunk, ends)
        if exponents is None:
            return None
        owners, mantissa_end, exponent_values, exponent_minus, exponent_plus = exponents
    else:
        owners, mantissa_end, exponent_values = None, ends, None
        exponent_minus = exponent_plus = 0
    # Every minus and plus must be one of those placed: then all bytes left are digits.
    if exponent_minus + (0 if negative is None else int(np.count_nonzero(negative))) != (
        _count_byte(chunk, text, "-", _MINUS)
    ) or exponent_plus != _count_byte(chunk, text, "+", _PLUS):
        return None
    dot_at = _dots(chunk, mantissa_end) if b"." in text else mantissa_end
    if dot_at is None:
        return None
    integer_digits = dot_at - mantissa_start
    # mantissa_end - dot_at - 1: -1 without a dot, 0 for a dot without digits after it.
    fraction_digits = mantissa_end - dot_at
    fraction_digits -= 1
    if (
        int(integer_digits.min()) < 1
        or not (fraction_digits != 0).all()
        or int((integer_digits + fraction_digits).max()) > MAX_MANTISSA_DIGITS
    ):
        return None
    has_dot = fraction_digits > 0
    np.maximum(fraction_digits, 0, out=fraction_digits)
    if ((np.take(codes, mantissa_start) == _ZERO) & (integer_digits > 1)).any():
        return None  # a leading zero
    if int(integer_digits.max()) == 1:  # `0.123`: the digit is the byte
        integer = np.take(codes, mantissa_start).astype(_U64)
        integer -= _U64(_ZERO)
    else:
        integer = chunk.digits_before("integer", dot_at, integer_digits)
    mantissa = chunk.digits_before("fraction", mantissa_end, fraction_digits)
    mantissa += integer * np.take(_INTEGER_POWERS_OF_TEN, fraction_digits)
    exponent = np.negative(fraction_digits)
    if owners is not None and exponent_values is not None:
        exponent[owners] += exponent_values
    magnitude = np.abs(exponent)
    if int(magnitude.max()) > MAX_EXPONENT:
        return None
    scale = np.take(_POWERS_OF_TEN, magnitude)
    values = mantissa.astype(np.float64)
    np.multiply(values, scale, out=values, where=exponent >= 0)
    np.divide(values, scale, out=values, where=exponent < 0)
    if negative is not None:
        # `-0` is the integer 0 (+0.0 in a float array); `-0.0` and `-0e0` are floats, -0.0.
        floats = has_dot | (mantissa_end < ends)
        np.negative(values, out=values, where=negative & (floats | (mantissa != 0)))
    return values


def _exponents(
    chunk: _Text, ends: IntArray
) -> tuple[IntArray, IntArray, IntArray, int, int] | None:
    """For the numbers with an exponent (few, in data as orjson writes it): their indices, every
    number's mantissa end, the exponents' values and the counts of their minus and plus signs."""
    marks = chunk.byte_mask("exponent_mark", ord("e"))
    marks |= chunk.codes == ord("E")
    positions = np.flatnonzero(marks)
    owners = np.searchsorted(chunk.bounds, positions) - 1
    if owners.size > 1 and not (np.diff(owners) > 0).all():
        return None  # two exponents in one number
    mantissa_end = ends.copy()
    mantissa_end[owners] = positions
    exponent_end = ends[owners]
    first = positions + 1
    sign = np.take(chunk.codes, np.minimum(first, chunk.size - 1))
    minus = (sign == _MINUS) & (first < exponent_end)
    signed = minus | ((sign == _PLUS) & (first < exponent_end))
    digits = exponent_end - first - signed
    if int(digits.min()) < 1 or int(digits.max()) > 2:
        return None
    values = chunk.digits_before("exponent", exponent_end, digits).view(np.int64)
    np.negative(values, out=values, where=minus)
    minus_count = int(np.count_nonzero(minus))
    return owners, mantissa_end, values, minus_count, int(np.count_nonzero(signed)) - minus_count


def _dots(chunk: _Text, mantissa_end: IntArray) -> IntArray | None:
    """Each number's dot (`mantissa_end` where none); None for two dots or one past the
    mantissa."""
    mask = chunk.byte_mask("dot", _DOT)
    count = int(np.count_nonzero(mask))
    positions = np.flatnonzero(mask)
    if count == chunk.count:  # one per number, as float data has: each in its own number?
        inside = (positions > chunk.bounds[:-1]) & (positions < mantissa_end)
        return positions if bool(inside.all()) else None
    owners = np.searchsorted(chunk.bounds, positions) - 1
    if owners.size > 1 and not (np.diff(owners) > 0).all():
        return None
    dot_at = mantissa_end.copy()
    dot_at[owners] = positions
    if not (dot_at <= mantissa_end).all():
        return None  # a dot in an exponent
    return dot_at


def _count_byte(chunk: _Text, text: bytes, name: str, code: int) -> int:
    if name.encode() not in text:
        return 0
    return int(np.count_nonzero(chunk.byte_mask(name, code)))


def _misplaced_minus(
    chunk: _Text, minus: npt.NDArray[np.bool_], digit: npt.NDArray[np.bool_]
) -> bool:
    """A minus that does not start a number or is not followed by a digit."""
    if minus[-1]:
        return True
    after_other = minus[1:] & ~chunk.comma[:-1]
    return bool(after_other.any() or (minus[:-1] & ~digit[1:]).any())


def _leading_zero(
    chunk: _Text, digit: npt.NDArray[np.bool_], minus: npt.NDArray[np.bool_] | None
) -> bool:
    """A number that starts with 0 and has another digit (`01`, `-07`), which JSON forbids."""
    size = chunk.size
    starts_number = _SCRATCH.get("starts_number", size, np.bool_)
    starts_number[0] = True
    np.copyto(starts_number[1:], chunk.comma[:-1])
    if minus is not None:
        starts_number[1:] |= minus[:-1]
    zero = chunk.byte_mask("zero", _ZERO)
    zero &= starts_number
    zero[:-1] &= digit[1:]
    zero[-1] = False
    return bool(zero.any())


def _slice_of(body: bytes, key: bytes) -> bytes:
    start = body.index(b"[", body.index(b'"data"', body.index(key))) + 1
    end = body.index(b"]", start)
    cut = body.find(b",", start + (256 << 10), end)
    return body[start : cut if cut >= 0 else end]


def _cpu_ms(parse: Any, text: bytes) -> float:
    timings = []
    for _ in range(20):
        begin = time.thread_time()
        parse(text)
        timings.append(time.thread_time() - begin)
    return 1e3 * statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks/json_decode.md")
    args = parser.parse_args()
    spec = model_spec("rmc1", 0.01)
    body = json_query(spec, 1024, seed=1024)
    integers, floats = _slice_of(body, b"sparse_indices"), _slice_of(body, b"dense_features")
    contenders: dict[str, tuple[Any, bytes]] = {
        "integers, numpy fromstring": (
            lambda text: np.fromstring(text, dtype=np.int64, sep=","), integers),
        "integers, vectorised (SWAR)": (int64_numbers, integers),
        "floats, orjson + np.asarray": (
            lambda text: np.asarray(orjson.loads(b"[" + text + b"]")), floats),
        "floats, vectorised (Clinger)": (float64_numbers, floats),
    }  # fmt: skip
    for parse, text in contenders.values():
        reference = np.asarray(orjson.loads(b"[" + text + b"]"))
        assert parse(text).tobytes() == reference.tobytes()
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (parse, text) in contenders.items():
            runs[name].append(_cpu_ms(parse, text))
    load_after = " ".join(f"{value:.2f}" for value in os.getloadavg())
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION, "",
        f"Run {date}, {os.cpu_count()} CPUs, numpy {np.__version__}, orjson {orjson.__version__};"
        f" load average {load_before} before, {load_after} after. Command: `flock "
        "/tmp/recsched-bench.lock .venv/bin/python bench/json_number_parsers.py`. One 256 KiB "
        "slice of a 1024-item RMC1 JSON query (the slice the pod parses at a time): "
        f"{len(integers)} bytes of indices, {len(floats)} bytes of dense features. Thread CPU "
        f"ms, median of {args.rounds} interleaved rounds of 20 parses each, range in brackets.",
        "", "| parser | CPU ms per slice |", "|---|---|",
    ]  # fmt: skip
    for name, values in runs.items():
        lines.append(
            f"| {name} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |"
        )
    medians = {name: statistics.median(values) for name, values in runs.items()}
    names = list(runs)
    ratios = [medians[names[1]] / medians[names[0]], medians[names[3]] / medians[names[2]]]
    lines += [
        "",
        f"Reading: the vectorised integer parser takes {ratios[0]:.2f}x numpy's CPU time and "
        f"the vectorised float parser {ratios[1]:.2f}x orjson's (each numpy operation is a pass "
        "over the slice: the digit parser needs about 35 of them, the float parser about 70). "
        "The pod keeps a numpy-only parser only where it is clearly faster; see "
        "`recsched_pod/http/json_numbers.py`.",
    ]
    replace_section(args.report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
