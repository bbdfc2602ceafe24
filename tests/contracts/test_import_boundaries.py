"""Architecture: components talk over HTTP and files, the operator never imports torch, the
tuner's core and the simulator stay pure, and each package's layers only import downwards.
Checked by import-linter against `.importlinter`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [lint_imports, str(ROOT / ".importlinter"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    contracts = (ROOT / ".importlinter").read_text().count("[importlinter:contract:")
    assert contracts >= 6, "the component, torch, purity and three layer contracts"
    assert f"{contracts} kept, 0 broken" in result.stdout
