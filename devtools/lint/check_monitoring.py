"""Parse monitoring/ exactly as gcloud (and so the APIs' JSON representation) does, offline.

    $SDK/platform/bundledpythonunix/bin/python3 check_monitoring.py SDK_ROOT MONITORING_DIR

log-metrics/*.json are Cloud Logging v2 LogMetric objects (`gcloud logging metrics create
--config-from-file`), alert-policies/*.json Cloud Monitoring v3 AlertPolicy objects (`gcloud alpha
monitoring policies create --policy-from-file`), dashboard.json one Monitoring v1 Dashboard (`gcloud
monitoring dashboards create --config-from-file`). Each file goes through the SDK's own
DictToMessageWithErrorCheck into the API's generated message class: unknown fields and wrong types
anywhere are errors, as gcloud reports them before any request. Then what the APIs require of each:
a metric's name and filter, a policy's display name and conditions, the dashboard's layout.
checkov has no framework for these API objects (it reads them only as Terraform resources), so
this check stays.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KINDS = {
    "log-metrics": ("logging", "v2", "LogMetric", ("name", "filter")),
    "alert-policies": ("monitoring", "v3", "AlertPolicy", ("displayName", "conditions", "combiner")),
    "dashboard.json": ("monitoring", "v1", "Dashboard", ("displayName",)),
}


def files_of(root: Path, kind: str) -> list[Path]:
    path = root / kind
    return [path] if path.suffix == ".json" else sorted(path.glob("*.json"))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_monitoring.py SDK_ROOT MONITORING_DIR", file=sys.stderr)
        return 2
    sdk_root, root = Path(argv[0]), Path(argv[1])
    sys.path[:0] = [str(sdk_root / "lib"), str(sdk_root / "lib" / "third_party")]
    from googlecloudsdk.api_lib.util import apis
    from googlecloudsdk.api_lib.util import messages as messages_util

    errors, checked = [], 0
    for kind, (api, version, message, required) in KINDS.items():
        message_class = getattr(apis.GetMessagesModule(api, version), message)
        paths = files_of(root, kind)
        if not paths:
            errors.append(f"{root / kind}: nothing to check")
        for path in paths:
            checked += 1
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                messages_util.DictToMessageWithErrorCheck(document, message_class)
            except Exception as error:  # json's and apitools' errors, reported as gcloud would
                errors.append(f"{path}: {type(error).__name__}: {error}")
                continue
            errors += [f"{path}: {field} is required" for field in required if not document.get(field)]
            if kind == "log-metrics" and document["name"] != path.stem:
                errors.append(f"{path}: name {document['name']!r} must be the file's name")
            if kind == "dashboard.json" and not (document.get("mosaicLayout") or {}).get("tiles"):
                errors.append(f"{path}: the dashboard has no tiles")
    for error in errors:
        print(error)
    if errors:
        print(f"check_monitoring: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_monitoring: {checked} file(s) parse as Logging v2 / Monitoring v3 and v1 messages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
