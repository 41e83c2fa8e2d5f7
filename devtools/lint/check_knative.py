"""Parse Cloud Run (Knative) YAML exactly as `gcloud run services|jobs replace` does, offline.

    $SDK/platform/bundledpythonunix/bin/python3 check_knative.py SDK_ROOT FILE...

`gcloud run services replace --dry-run` needs credentials and the Cloud Run API, so it cannot run
here (the deploy workflow runs it). Before any network call gcloud converts the file into the
Cloud Run v1 API message with messages_util.DictToMessageWithErrorCheck, which rejects unknown
fields and wrong types anywhere in the document; this script runs that same conversion with the
installed SDK's own code, then checks what Cloud Run requires of a service or job file.
Runs under the SDK's bundled Python (the SDK's libraries are not importable from other venvs).
checkov has no Cloud Run (Knative serving / run.googleapis.com Job) policies and would read a
Knative Service as a Kubernetes Service, so the Cloud Run YAML is checked here only.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXPECTED = {
    ("serving.knative.dev/v1", "Service"): "Service",
    ("run.googleapis.com/v1", "Job"): "Job",
}


def containers_of(document: dict) -> list:
    spec = document.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if document.get("kind") == "Job":
        template_spec = (template_spec.get("template") or {}).get("spec") or {}
    return template_spec.get("containers") or []


def check(path: Path, yaml, messages_util, run_messages) -> list[str]:
    try:
        document = yaml.load_path(str(path))
    except Exception as error:  # gcloud's yaml raises its own error types
        return [f"{path}: YAML: {error}"]
    if not isinstance(document, dict):
        return [f"{path}: not a mapping"]
    key = (document.get("apiVersion"), document.get("kind"))
    if key not in EXPECTED:
        return [f"{path}: apiVersion/kind {key} is not a Cloud Run service or job"]
    try:
        messages_util.DictToMessageWithErrorCheck(document, getattr(run_messages, EXPECTED[key]))
    except Exception as error:  # DecodeError / ScalarTypeMismatchError, as gcloud reports them
        return [f"{path}: {error}"]
    errors = []
    if not (document.get("metadata") or {}).get("name"):
        errors.append(f"{path}: metadata.name is required")
    containers = containers_of(document)
    if not containers:
        errors.append(f"{path}: no containers")
    for container in containers:
        if not container.get("image"):
            errors.append(f"{path}: a container has no image")
    return errors


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: check_knative.py SDK_ROOT FILE...", file=sys.stderr)
        return 2
    sdk_root = Path(argv[0])
    sys.path[:0] = [str(sdk_root / "lib"), str(sdk_root / "lib" / "third_party")]
    from googlecloudsdk.api_lib.util import apis
    from googlecloudsdk.api_lib.util import messages as messages_util
    from googlecloudsdk.core import yaml

    run_messages = apis.GetMessagesModule("run", "v1")
    errors = [error for name in argv[1:] for error in check(Path(name), yaml, messages_util, run_messages)]
    for error in errors:
        print(error)
    if errors:
        print(f"check_knative: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_knative: {len(argv) - 1} file(s) parse as Cloud Run v1 messages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
