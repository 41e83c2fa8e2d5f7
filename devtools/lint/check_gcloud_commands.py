"""Check that every gcloud command deploy/cloudrun/deploy.sh runs is one gcloud accepts, offline.

    $SDK/platform/bundledpythonunix/bin/python3 check_gcloud_commands.py SDK_ROOT DEPLOY_SH

Runs the script with --dry-run (it prints each command instead of running it), then feeds each
printed gcloud command to the installed SDK's own command-line parser, in this one process, with
a fresh empty configuration. gcloud parses the command group, the command and every flag (names,
choices, value types) before it looks for credentials: a valid command line stops with exit
status 1 at "no active account", a typo in a flag, a command or a choice stops earlier with a
usage error (status 2). Nothing reaches the network: with no account gcloud makes no API call.
A policy tool such as checkov reads configuration files, not command lines: no tool but gcloud's
own command tree can say whether a gcloud command exists, so this check stays.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

# What gcloud prints once parsing succeeded and it wants credentials.
NO_ACCOUNT = "You do not currently have an active account selected"
DRY_RUN_ENV = {
    "PROJECT_ID": "binpay-lint",
    "PAYMENT_GATEWAY_URL": "https://gateway.invalid",
    "TAG": "0123456789abcdef0123456789abcdef01234567",
    "REGION": "us-central1",
}


def dry_run_commands(script: Path, rendered_dir: str) -> list[list[str]]:
    """The commands the script prints; the YAML it renders for `run services|jobs replace` stays in
    rendered_dir, since gcloud reads a replace command's file while it parses the command line."""
    result = subprocess.run(
        ["bash", str(script), "--dry-run"],
        env={**os.environ, **DRY_RUN_ENV, "RENDERED_DIR": rendered_dir},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{script} --dry-run failed ({result.returncode}):\n{result.stderr}")
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]


def run_captured(cli, args: list[str], capture: Path) -> tuple[object, str]:
    """Run one command line through gcloud's CLI object with fd 2 sent to a file; gcloud's log
    handlers hold the process's stderr, so only an fd-level redirect catches what it prints."""
    sys.stderr.flush()
    saved = os.dup(2)
    with capture.open("w+b") as handle:
        os.dup2(handle.fileno(), 2)
        try:
            cli.Execute(args)
            status: object = 0
        except SystemExit as stop:
            status = stop.code
        except Exception as error:  # anything gcloud raises past its own handler is a failure
            status = f"{type(error).__name__}: {error}"
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        handle.seek(0)
        return status, handle.read().decode("utf-8", "replace")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_gcloud_commands.py SDK_ROOT DEPLOY_SH", file=sys.stderr)
        return 2
    sdk_root, script = Path(argv[0]), Path(argv[1])
    config_dir = tempfile.mkdtemp(prefix="gcloud-lint-")
    commands = dry_run_commands(script, tempfile.mkdtemp(prefix="rendered-", dir=config_dir))
    if not commands:
        print(f"check_gcloud_commands: {script} --dry-run printed no gcloud command", file=sys.stderr)
        return 1
    for key in [key for key in os.environ if key.startswith(("CLOUDSDK_", "GOOGLE_"))]:
        del os.environ[key]
    os.environ.update(
        CLOUDSDK_CONFIG=config_dir,
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
    )
    sys.path[:0] = [str(sdk_root / "lib"), str(sdk_root / "lib" / "third_party")]
    from googlecloudsdk import gcloud_main

    cli = gcloud_main.CreateCLI([])
    problems = []
    capture = Path(config_dir) / "stderr.txt"
    for command in commands:
        status, output = run_captured(cli, command[1:], capture)
        if status != 1 or NO_ACCOUNT not in output:
            tail = "\n    ".join(output.strip().splitlines()[-4:])
            problems.append(f"{shlex.join(command)}\n    status {status}: {tail}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_gcloud_commands: {len(problems)} of {len(commands)} command(s) rejected", file=sys.stderr)
        return 1
    print(f"check_gcloud_commands: gcloud parses all {len(commands)} command(s) of {script}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
