"""`json_numbers.int64_numbers` returns exactly what orjson and np.asarray make, or None; it never
returns an array for a text orjson refuses or reads differently.

A None only sends the text down the previous path (test_json_tensor_parsing checks the whole
decode), so these tests check two things: whatever it returns is the reference's array, and it does
return one for the texts clients send, so the fast path is really taken.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsched_pod.http import json_numbers
from recsched_pod.http.json_numbers import int64_numbers


def reference(text: bytes) -> npt.NDArray[np.generic] | None:
    """np.asarray(orjson.loads('[text]')), or None when orjson refuses the text."""
    try:
        return np.asarray(orjson.loads(b"[" + text + b"]"))
    except orjson.JSONDecodeError:
        return None


def integer_text(seed: int, count: int) -> tuple[bytes, list[int]]:
    """Random integers of 1 to 18 digits, some negative, as orjson writes them."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(1, 19, size=count)
    values = [
        int(rng.integers(0, 10 ** int(width))) * (-1 if rng.random() < 0.3 else 1)
        for width in widths
    ]
    return orjson.dumps(values)[1:-1], values


@pytest.mark.parametrize("seed", range(5))
def test_random_integers_parse_exactly(seed: int) -> None:
    text, values = integer_text(seed, 3000)
    parsed = int64_numbers(text)
    assert parsed is not None and parsed.dtype == np.int64
    assert parsed.tolist() == values


def test_indices_as_the_load_test_sends_them_take_the_fast_path() -> None:
    rng = np.random.default_rng(7)
    indices = rng.integers(0, 40_000, size=(64, 8, 80))
    text = orjson.dumps(indices.reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    parsed = int64_numbers(text)
    assert parsed is not None
    np.testing.assert_array_equal(parsed, indices.reshape(-1))


def test_zero_minus_zero_and_the_int64_range_inside_its_ends() -> None:
    text = b"0,-0,10,-10,9223372036854775806,-9223372036854775807"
    parsed = int64_numbers(text)
    assert parsed is not None
    assert parsed.tolist() == [0, 0, 10, -10, 2**63 - 2, -(2**63) + 1]


@pytest.mark.parametrize(
    "text",
    [b"", b"1,", b",1", b"1,,2", b"-", b"1,-", b"--1", b"1-2", b"1--2", b"-1-", b"01", b"-01",
     b"1,00", b"1, 2", b" 1", b"1\n", b"+1", b"1.0", b"1e2", b"true", b"null", b"0x1",
     b"9223372036854775807", b"-9223372036854775808", b"99999999999999999999"],
)  # fmt: skip
def test_texts_that_are_not_plain_json_integers_are_left_to_the_previous_path(
    text: bytes,
) -> None:
    assert int64_numbers(text) is None


def test_concurrent_threads_each_get_their_own_numbers() -> None:
    """The work arrays are per thread: parses on a pool of threads do not mix."""
    texts = [integer_text(seed, 20_000) for seed in range(8)]

    def parse(index: int) -> bool:
        text, values = texts[index]
        parsed = int64_numbers(text)
        return parsed is not None and parsed.tolist() == values

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(parse, list(range(8)) * 4))


def test_a_slice_past_the_kept_size_is_parsed_with_arrays_that_are_not_kept() -> None:
    """A text without commas for megabytes (one slice) must not leave work arrays its size."""
    count = json_numbers._Scratch.KEPT_SIZE // 2 + 10
    parsed = int64_numbers(b"7," * count + b"7")
    assert parsed is not None and parsed.size == count + 1 and set(parsed.tolist()) == {7}
    kept = json_numbers._SCRATCH.arrays.values()
    assert max(array.size for array in kept) <= json_numbers._Scratch.KEPT_SIZE * 5 // 4


tokens = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.integers(0, 99).map(lambda value: f"0{value}"),
    st.sampled_from(["", "-", "+1", "-0", "0", "1.5", "1e3", " 7", "7 ", "--3", "3-", "x"]),
)


@settings(max_examples=500, deadline=None)
@given(values=st.lists(tokens, min_size=1, max_size=12))
def test_random_texts_parse_to_the_reference_or_answer_none(values: list[str]) -> None:
    text = ",".join(values).encode()
    parsed = int64_numbers(text)
    expected = reference(text)
    if parsed is not None:
        assert expected is not None and expected.dtype == np.int64, text
        assert parsed.tolist() == expected.tolist(), text
