"""The shared package finds the contract files both in the repository and in a service's generated copy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from binpay_common import contracts

REPO = Path(__file__).resolve().parents[2]


def test_source_package_reads_the_repositorys_contracts() -> None:
    assert contracts.contracts_dir() == REPO / "contracts"
    steps = contracts.load_json("saga-log/steps.json")
    assert steps == json.loads((REPO / "contracts" / "saga-log" / "steps.json").read_text())


def test_generated_copy_reads_its_own_contracts(tmp_path: Path) -> None:
    """A service image holds only its folder: its copy must not reach for the repository's contracts/."""
    shutil.copytree(REPO / "processor" / "binpay_common", tmp_path / "binpay_common")
    code = "from binpay_common import contracts; print(contracts.contracts_dir())"
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(found.stdout.strip()) == tmp_path / "binpay_common" / "contracts"
