"""`bench/peers.py measure --servers recsched` writes one server's figures as their own section of
peers.md: the comparison run's tables stay, a rerun replaces only that section, and the section
names its own run (date, commit, command) so no figure is mistaken for the comparison's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from json_decode import replace_section  # noqa: E402
from peers_report import render_one_server  # noqa: E402


def _recsched_round(seed: int, cap_50: float, p95_ms: float) -> dict[str, Any]:
    latency = {"p50_ms": p95_ms / 2, "p95_ms": p95_ms, "p99_ms": p95_ms * 1.5}
    return {
        "seed": seed,
        "recsched": {
            "capacity_100ms": {"capacity_qps": 40.0, "command": "recsched-loadtest capacity"},
            "capacity_50ms": {"capacity_qps": cap_50, "command": "recsched-loadtest capacity"},
            "common_load": {"latency": latency, "errors": {}, "command": "recsched-loadtest run"},
            "load_average_after": 0.5,
            "floor": {"latency": latency, "command": "recsched-loadtest run --rate 1"},
        },
    }


def _results(caps_50: list[float], p95s_ms: list[float], date: str) -> dict[str, Any]:
    return {
        "machine": {"cpus": 2, "processor": "test", "load_average": 0.4},
        "date": date,
        "elapsed_s": 600,
        "load_average_start": "0.30 0.20 0.10",
        "commit": "abc1234",
        "args": {
            "rounds": 3,
            "batch": 128,
            "common_qps": 4.0,
            "trial_s": 4.0,
            "seed": 1,
            "common_s": 30.0,
            "floor_qps": 1.0,
            "floor_s": 30.0,
        },
        "rounds": [
            _recsched_round(seed, cap, p95)
            for seed, (cap, p95) in enumerate(zip(caps_50, p95s_ms, strict=True))
        ],
    }


def test_a_recsched_only_run_renders_its_own_section_with_the_50ms_floor() -> None:
    section = render_one_server(_results([8.0, 0.0, 10.0], [30.0, 55.0, 35.0], "d1"), "x.json")
    assert section.startswith(
        "## RecSched pod alone (`--servers recsched`)\n\nRun of d1, commit abc1234."
    )
    assert "--servers recsched" in section and "docs/benchmarks/x.json" in section
    assert "MLServer" not in section
    assert "\n## " not in section  # its tables are subsections, so the section stays one piece
    assert "### Latency-bounded capacity" in section
    assert "8.0, 0.0, 10.0 | 8.0 | 0.0-10.0" in section
    assert "--targets-ms 100,50" in section and "recsched-loadtest capacity" in section
    assert "median capacity 8.0 QPS, median p95 35.0 ms at 4 QPS: **met**." in section


def test_a_recsched_only_run_that_misses_50ms_says_so() -> None:
    section = render_one_server(_results([0.0, 0.0, 0.0], [55.0, 60.0, 52.0], "d1"), "x.json")
    assert "**not met**." in section


def test_the_section_joins_peers_md_and_a_rerun_replaces_only_it(tmp_path: Path) -> None:
    report = tmp_path / "peers.md"
    comparison = "# RecSched beside MLServer\n\n## Floors\n\ncompared\n\n## Reading\n\nread\n"
    report.write_text(comparison)
    replace_section(report, render_one_server(_results([1.0], [40.0], "first"), "x.json"))
    replace_section(report, render_one_server(_results([2.0], [45.0], "second"), "x.json"))
    text = report.read_text()
    assert text.startswith(comparison.rstrip("\n"))
    assert "Run of second" in text and "Run of first" not in text
    assert text.count("## RecSched pod alone") == 1


def test_a_run_of_the_50ms_search_alone_shows_only_that_column() -> None:
    results = _results([3.0, 4.0, 5.0], [40.0, 45.0, 48.0], "d1")
    results["args"]["targets_ms"] = [50]
    for one_round in results["rounds"]:
        del one_round["recsched"]["capacity_100ms"]
    section = render_one_server(results, "x.json")
    assert "p95 <= 100 ms" not in section and "--targets-ms 50`" in section
    assert "| RecSched pod | 3.0, 4.0, 5.0 | 4.0 | 3.0-5.0 |" in section
    assert "median capacity 4.0 QPS" in section
