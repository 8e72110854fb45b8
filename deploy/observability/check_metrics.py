#!/usr/bin/env python3
"""Holds the dashboard and the alert rules to the metrics Orion really exports.

Reads every `counter!`, `gauge!` and `histogram!` call in the Rust sources (and the names given
to `Caps::named`, whose gauge and counter are named at run time), the labels each call site
sets, and the histogram buckets configured in crates/orion-telemetry/src/metrics.rs. Then
checks every PromQL expression in the dashboard(s), the rule file and the rule tests' input
series:

- each metric name is exported by Orion, or is `up`, or comes from RabbitMQ (`rabbitmq_*`);
- `_bucket` is used only for histograms that have buckets (the others are rendered as
  summaries: `name{quantile=...}`, `name_sum`, `name_count`); `_sum`/`_count` only for
  histograms;
- the labels in a selector, and in a `by (...)` over a single Orion metric, are ones the call
  sites set (or target labels Prometheus adds: job, instance, namespace, ...).

With `--promtool PATH`, also has promtool parse every dashboard query (Grafana's variables
replaced by placeholders), so that a typo in PromQL is caught before Grafana shows an error.

Exits 1 on any finding. Standard library only. Usage, from anywhere:
    python3 deploy/observability/check_metrics.py [--promtool PATH] [files...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOURCE_GLOBS = ["orion-*/src/**/*.rs", "crates/*/src/**/*.rs"]
TELEMETRY = ROOT / "crates/orion-telemetry/src/metrics.rs"

# Labels Prometheus attaches from the scrape target (static configs, Kubernetes discovery).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "node"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "atan2",
}

MACRO = re.compile(r"\b(counter|gauge|histogram)!\s*\(")
LABEL_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*=>')


def balanced(text: str, open_at: int) -> int:
    """Index just past the parenthesis that closes the one at `open_at`."""
    depth = 0
    i = open_at
    in_str = False
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


class Metric:
    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind
        self.labels: set[str] = set()
        self.sites: list[str] = []


def exported_metrics() -> dict[str, Metric]:
    metrics: dict[str, Metric] = {}
    # Names chosen at run time: Caps::named(total, per_key, "<gauge>", "<refusals counter>").
    dynamic: dict[str, list[str]] = {}

    def add(name: str, kind: str, labels: set[str], site: str) -> None:
        metric = metrics.setdefault(name, Metric(name, kind))
        if metric.kind != kind:
            raise SystemExit(f"{name} is both a {metric.kind} and a {kind} ({site})")
        metric.labels |= labels
        metric.sites.append(site)

    files = sorted({p for g in SOURCE_GLOBS for p in ROOT.glob(g)})
    for path in files:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"Caps::named\(", text):
            args = text[m.end() - 1 : balanced(text, m.end() - 1)]
            names = re.findall(r'"([a-z_][a-z0-9_]*)"', args)
            if len(names) == 2:
                dynamic.setdefault("gauge", [])
                dynamic.setdefault("refusals", [])
                dynamic["gauge"].append(names[0])
                dynamic["refusals"].append(names[1])
    for path in files:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT)
        for m in MACRO.finditer(text):
            kind = m.group(1)
            call = text[m.end() - 1 : balanced(text, m.end() - 1)]
            line = text.count("\n", 0, m.start()) + 1
            site = f"{rel}:{line}"
            labels = set(LABEL_KEY.findall(call))
            if re.search(r"&\s*labels\b", call):
                # Labels given as an array built just before the call: `let labels = [("k", v), ...]`.
                before = text[: m.start()]
                decl = before.rfind("let labels")
                if decl < 0:
                    raise SystemExit(f"{site}: cannot find the `labels` this call uses")
                array = before[decl:]
                array = array[: array.find("];") + 1 or None]
                labels |= set(re.findall(r'\(\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*,', array))
            name = re.match(r'\(\s*"([A-Za-z_:][A-Za-z0-9_:]*)"', call)
            if name:
                add(name.group(1), kind, labels, site)
                continue
            ident = re.match(r"\(\s*self\.(?:limits\.)?(gauge|refusals)\b", call)
            if ident and ident.group(1) in dynamic:
                for dyn in dynamic[ident.group(1)]:
                    add(dyn, kind, labels, site)
                continue
            raise SystemExit(f"{site}: a metric whose name this checker cannot read: {call[:80]}")
    return metrics


def bucket_matchers() -> list[tuple[str, str]]:
    text = TELEMETRY.read_text(encoding="utf-8")
    return re.findall(r'Matcher::(Full|Prefix|Suffix)\("([^"]+)"', text)


def has_buckets(name: str, matchers: list[tuple[str, str]]) -> bool:
    for how, value in matchers:
        if (how == "Full" and name == value) or (how == "Prefix" and name.startswith(value)) or (
            how == "Suffix" and name.endswith(value)
        ):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Expressions


def rule_expressions(path: Path) -> list[tuple[str, str]]:
    """`expr:` values of a Prometheus rule file (plain or block scalars), without a YAML library."""
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        start = i + 1
        value = m.group(2).strip()
        if value in ("|", ">", "|-", ">-", "|+", ">+"):
            indent = None
            body = []
            i += 1
            while i < len(lines):
                line = lines[i]
                if line.strip() == "":
                    body.append("")
                    i += 1
                    continue
                cur = len(line) - len(line.lstrip())
                if indent is None:
                    indent = cur
                if cur < indent:
                    break
                body.append(line[indent:])
                i += 1
            value = "\n".join(body)
        else:
            if value[:1] in "'\"" and value[-1:] == value[:1]:
                value = value[1:-1]
            i += 1
        out.append((f"{path.name}:{start}", value))
    return out


def test_series(path: Path) -> list[tuple[str, str]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r"^\s*-?\s*series:\s*(['\"])(.*)\1\s*$", line)
        if m:
            out.append((f"{path.name}:{n}", m.group(2)))
    return out


def dashboard_expressions(path: Path) -> list[tuple[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title", where)
            if isinstance(node.get("expr"), str):
                out.append((f"{path.name}: {title}", node["expr"]))
            for key, value in node.items():
                if key != "expr":
                    walk(value, title)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(data.get("panels", []), "panels")
    for var in data.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if isinstance(query, str) and query:
                out.append((f"{path.name}: variable {var.get('name')}", query))
    return out


STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def strip_template_calls(expr: str) -> str:
    # Grafana's label_values(<selector>, <label>) and friends: keep the selector only.
    return re.sub(r"label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", r"\1", expr.strip(), flags=re.S)


def selectors(expr: str):
    """(metric name, set of label names in its matchers) for every vector selector."""
    expr = strip_template_calls(expr)
    found = []
    # Blank out strings (keeping length), then find identifiers outside {...} and [...].
    blank = STRING.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', expr)
    i = 0
    while i < len(blank):
        c = blank[i]
        if c == "[":
            i = blank.index("]", i) + 1
            continue
        if c == "{":
            j = blank.index("}", i)
            i = j + 1
            continue
        if c.isdigit() or (c == "." and i + 1 < len(blank) and blank[i + 1].isdigit()):
            m = re.match(r"[0-9.]+(?:e[+-]?[0-9]+)?[a-zA-Z]*", blank[i:])
            i += m.end()
            continue
        m = IDENT.match(blank, i)
        if not m or (i > 0 and (blank[i - 1].isalnum() or blank[i - 1] in "_$")):
            i += 1
            continue
        word = m.group(0)
        end = m.end()
        rest = blank[end:].lstrip()
        if word.lower() in PROMQL_WORDS:
            if word in ("by", "without", "on", "ignoring", "group_left", "group_right") and rest.startswith("("):
                # Skip the label list.
                i = blank.index(")", end) + 1
            else:
                i = end
            continue
        if rest.startswith("(") or re.match(r"(by|without)\s*\(", rest):
            i = end  # a function, or an aggregation written `sum by (...) (...)`
            continue
        labels = set()
        if rest.startswith("{"):
            brace = blank.index("{", end)
            close = blank.index("}", brace)
            labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", blank[brace + 1 : close]))
        found.append((word, labels))
        i = end
    return found


def aggregations(expr: str):
    """(labels of `by (...)`, inner expression) for every `agg by (labels) (inner)`."""
    expr = strip_template_calls(expr)
    out = []
    for m in re.finditer(r"\bby\s*\(([^)]*)\)\s*\(", expr):
        labels = {l.strip() for l in m.group(1).split(",") if l.strip()}
        open_at = m.end() - 1
        out.append((labels, expr[open_at : balanced(expr, open_at)]))
    # `sum(...) by (labels)` form.
    for m in re.finditer(r"\b[a-z_]+\s*\(", expr):
        close = balanced(expr, m.end() - 1)
        after = re.match(r"\s*by\s*\(([^)]*)\)", expr[close:])
        if after:
            labels = {l.strip() for l in after.group(1).split(",") if l.strip()}
            out.append((labels, expr[m.end() - 1 : close]))
    return out


# ---------------------------------------------------------------------------------------------


GRAFANA_VARS = [
    (re.compile(r"\$__rate_interval|\$__interval"), "5m"),
    (re.compile(r"\$__range"), "1h"),
    (re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?"), "x"),
]


def promtool_parse(promtool: str, exprs: list[tuple[str, str]]) -> list[str]:
    """Has promtool parse the dashboard's queries (Grafana variables replaced) as recording rules."""
    import subprocess
    import tempfile

    rules = []
    for n, (where, expr) in enumerate(exprs):
        expr = strip_template_calls(expr)
        for pattern, value in GRAFANA_VARS:
            expr = pattern.sub(value, expr)
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard_queries.yml"
        # JSON is YAML: no YAML library needed.
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
        run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    if run.returncode != 0:
        return ["promtool rejects a dashboard query:\n" + run.stdout + run.stderr]
    return []


def main(argv: list[str]) -> int:
    promtool = None
    if "--promtool" in argv:
        at = argv.index("--promtool")
        promtool = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    metrics = exported_metrics()
    matchers = bucket_matchers()
    if argv:
        paths = [Path(a) for a in argv]
    else:
        paths = sorted(HERE.glob("*.json")) + [p for p in (HERE / "alerts.yml", HERE / "alerts_test.yml") if p.exists()]

    exprs: list[tuple[str, str]] = []
    for path in paths:
        if path.suffix == ".json":
            exprs += dashboard_expressions(path)
        elif path.name.endswith("_test.yml"):
            exprs += test_series(path)
        else:
            exprs += rule_expressions(path)
    if not exprs:
        print("no expressions found", file=sys.stderr)
        return 1

    def family(name: str):
        """(Orion metric, what the suffix means) for a name as queried, or (None, reason)."""
        if name in metrics:
            m = metrics[name]
            if m.kind == "histogram" and has_buckets(name, matchers):
                return None, f"{name} is a histogram with buckets: query {name}_bucket/_sum/_count"
            return m, "plain"
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base and base in metrics:
                m = metrics[base]
                if m.kind != "histogram":
                    return None, f"{name}: {base} is a {m.kind}, it has no {suffix}"
                if suffix == "_bucket" and not has_buckets(base, matchers):
                    return None, f"{name}: {base} has no buckets configured (rendered as a summary: use quantile=)"
                return m, suffix
        return None, f"{name} is not exported by Orion"

    problems: list[str] = []
    used: set[str] = set()
    for where, expr in exprs:
        for name, labels in selectors(expr):
            if name == "up" or name.startswith("rabbitmq_"):
                continue
            m, how = family(name)
            if m is None:
                problems.append(f"{where}: {how}")
                continue
            used.add(m.name)
            allowed = m.labels | TARGET_LABELS | {"__name__"}
            if how == "_bucket":
                allowed |= {"le"}
            if how == "plain" and m.kind == "histogram":
                allowed |= {"quantile"}
            unknown = labels - allowed
            if unknown:
                problems.append(f"{where}: {name} has no label(s) {sorted(unknown)} (it has {sorted(m.labels)})")
        for labels, inner in aggregations(expr):
            names = {n for n, _ in selectors(inner) if n != "up" and not n.startswith("rabbitmq_")}
            fams = {family(n)[0] for n in names}
            if len(fams) != 1 or None in fams:
                continue
            (m,) = fams
            allowed = m.labels | TARGET_LABELS
            if any(n.endswith("_bucket") for n in names):
                allowed |= {"le"}
            unknown = labels - allowed
            if unknown:
                problems.append(f"{where}: by {sorted(labels)} over {m.name}, which has no label(s) {sorted(unknown)}")

    if promtool:
        problems += promtool_parse(promtool, [e for e in exprs if e[0].split(":")[0].endswith(".json")])

    print(f"{len(metrics)} metrics exported by the Rust sources; {len(exprs)} expressions checked in "
          + ", ".join(p.name for p in paths))
    unused = sorted(set(metrics) - used)
    if unused:
        print("exported but not shown or alerted on: " + ", ".join(unused))
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("OK: every metric and label used is exported")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
