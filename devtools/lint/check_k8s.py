"""Validate Kubernetes manifests strictly, and check that each file applies on its own.

    python check_k8s.py [--kubernetes-version 1.33.0 ...] FILE...

Schema: kubernetes-validate's bundled OpenAPI-derived JSON schemas in strict mode (unknown fields
are errors). Its CLI only *warns* and exits 0 when it has no schema for an apiVersion/kind (e.g.
apps/v1beta1), so this script calls the library and treats a missing schema as an error.
The pod hardening docs/deploy.md promises (non-root, read-only root filesystem, no privilege
escalation, ALL capabilities dropped, RuntimeDefault seccomp, resources, tagged images) is checkov's
(lint.sh step checkov: CKV_K8S_*). What checkov has no policy for stays here: strict schema
validation against the Kubernetes versions BinPay supports (checkov checks policies, not schemas),
the custom resources' schemas, and with --namespace: every namespaced object declares that
namespace (so `kubectl apply -f FILE` never lands in whatever namespace is current), and every
Secret reference is optional, so a missing Secret lets the app start and name the settings it
lacks instead of CreateContainerConfigError (both BinPay's own rules, no checkov policy).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import yaml
from kubernetes_validate import utils as kv

POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


# Custom resources kubernetes-validate has no schema for: the fields of their CRDs BinPay uses, strictly.
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
CUSTOM_SCHEMAS = {
    # Google Cloud Managed Service for Prometheus (k8s/monitoring.yaml).
    ("monitoring.googleapis.com/v1", "PodMonitoring"): {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.googleapis.com/v1"},
            "kind": {"const": "PodMonitoring"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "targetLabels": {"type": "object"},
                    "limits": {"type": "object"},
                    "filterRunning": {"type": "boolean"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": ["string", "integer"]},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "timeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "params": {"type": "object"},
                                "metricRelabeling": {"type": "array"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def documents(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for document in yaml.safe_load_all(handle):
            if document is not None:
                yield document


def pod_spec(resource: dict) -> dict | None:
    path = POD_TEMPLATE_PATHS.get(resource.get("kind", ""))
    if path is None:
        return None
    node = resource
    for key in path:
        node = node.get(key) or {}
    return node


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def namespace_problems(resource: dict, namespace: str) -> list[str]:
    problems = []
    if resource.get("kind") not in CLUSTER_SCOPED and (resource.get("metadata") or {}).get("namespace") != namespace:
        problems.append(f"metadata.namespace must be {namespace} (the file must apply on its own)")
    spec = pod_spec(resource) or {}
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        references = [source.get("secretRef") for source in container.get("envFrom") or []]
        references += [(variable.get("valueFrom") or {}).get("secretKeyRef") for variable in container.get("env") or []]
        for reference in filter(None, references):
            if reference.get("optional") is not True:
                problems.append(
                    f"container {container.get('name', '?')}: Secret {reference.get('name')} must be optional: true "
                    "(the app names what is missing; a required one is CreateContainerConfigError)"
                )
    return problems


def check(path: Path, versions: list[str], namespace: str | None = None) -> list[str]:
    try:
        resources = list(documents(path))
    except yaml.YAMLError as error:
        return [f"{path}: YAML: {error}"]
    if not resources:
        return [f"{path}: no Kubernetes resources"]
    errors = []
    for resource in resources:
        if not isinstance(resource, dict) or "kind" not in resource or "apiVersion" not in resource:
            errors.append(f"{path}: a document without apiVersion/kind")
            continue
        label = f"{path}: {resource['kind']}/{(resource.get('metadata') or {}).get('name', '?')}"
        custom = CUSTOM_SCHEMAS.get((resource["apiVersion"], resource["kind"]))
        if custom is not None:
            validator = jsonschema.Draft202012Validator(custom)
            errors.extend(f"{label}: {error.json_path}: {error.message}" for error in validator.iter_errors(resource))
            continue
        for version in versions:
            try:
                kv.validate(resource, version, strict=True)
            except kv.ValidationError as error:
                path_text = ".".join(str(part) for part in error.path)
                errors.append(f"{label} (k8s {version}): {path_text}: {error.message}")
            except kv.SchemaNotFoundError:
                errors.append(f"{label} (k8s {version}): no schema for {resource['apiVersion']} {resource['kind']}")
            except kv.VersionNotSupportedError:
                errors.append(f"{label}: kubernetes-validate has no schemas for {version}")
        if namespace:
            errors.extend(f"{label}: {problem}" for problem in namespace_problems(resource, namespace))
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", action="append", dest="versions")
    parser.add_argument("--namespace", help="every namespaced object must declare this namespace")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    versions = args.versions or ["1.33.0"]
    errors = [error for path in args.files for error in check(path, versions, args.namespace)]
    for error in errors:
        print(error)
    if errors:
        print(f"check_k8s: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_k8s: {len(args.files)} file(s) valid against Kubernetes {', '.join(versions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
