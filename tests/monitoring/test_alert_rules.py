"""The alert rules, checked and unit-tested by promtool (Prometheus' own rule engine).

`rules_test.yaml` holds the unit tests; here pytest runs them, proves every alert has a firing
case and a quiet case, that every alert carries a runbook, and that the unit tests can fail: a
copy of the rules with one metric name misspelt must fail them. Skips only where promtool is
missing (CI installs it with scripts/install-prometheus.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
RULES = ROOT / "helm" / "recsched" / "rules" / "recsched.rules.yaml"
UNIT_TESTS = Path(__file__).parent / "rules_test.yaml"
PROMTOOL = (
    os.environ.get("RECSCHED_PROMTOOL_BIN") or shutil.which("promtool") or "/usr/bin/promtool"
)

requires_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).is_file(), reason=f"no promtool at {PROMTOOL}"
)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@requires_promtool
def test_promtool_accepts_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@requires_promtool
def test_promtool_unit_tests_of_every_alert_pass() -> None:
    result = promtool("test", "rules", str(UNIT_TESTS), cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set()
    assert names - quiet == set()
    assert len(names) >= 8


def test_every_alert_has_a_runbook_summary_and_severity() -> None:
    for rule in alert_rules():
        assert rule["annotations"]["runbook"].strip(), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"


@requires_promtool
@pytest.mark.parametrize(
    ("correct", "misspelt"),
    [
        ("recsched_router_fallbacks_total", "recsched_router_fallback_total"),
        ("by (namespace, recmodel, stage)", "by (namespace, recmodel, stages)"),
    ],
)
def test_unit_tests_fail_when_a_rule_misspells_a_name(
    tmp_path: Path, correct: str, misspelt: str
) -> None:
    rules = RULES.read_text()
    assert correct in rules
    broken = tmp_path / "helm" / "recsched" / "rules" / RULES.name
    broken.parent.mkdir(parents=True)
    broken.write_text(rules.replace(correct, misspelt))
    tests = tmp_path / "tests" / "monitoring" / UNIT_TESTS.name
    tests.parent.mkdir(parents=True)
    shutil.copy(UNIT_TESTS, tests)
    result = promtool("test", "rules", str(tests), cwd=tests.parent)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
