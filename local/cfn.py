"""template.yaml as CloudFormation sees it: transformed by the SAM translator for given parameters, its
conditions and ``Fn::If`` evaluated, and the connection budget it allows.

The translator is the SAM CLI's own (its tool venv, local/sam_cli.py), the one `sam deploy` and
CloudFormation's hosted transform run. The tests assert on the TRANSFORMED template (what SAM makes of
a property is not always what it says: field notes), and bin/preflight checks the budget on it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local import sam_cli

ROOT = Path(__file__).resolve().parents[1]

# Run in the SAM CLI's venv: argv = template, jobs (JSON), output (JSON). Each job is the parameter
# values and, per resource, the S3 location `sam package` would give its code (a new location = new code).
_TRANSFORM = r"""
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform
from samtranslator.public.exceptions import InvalidDocumentException

class NoManagedPolicies:
    def load(self):
        return {}

source = open(sys.argv[1]).read()
outputs = []
for job in json.load(open(sys.argv[2])):
    template = yaml_parse(source)
    for name, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = job["artifacts"].get(name, f"s3://artifacts/{name}.zip")
    try:
        outputs.append(transform(template, job["parameters"], NoManagedPolicies()))
    except InvalidDocumentException as e:
        sys.exit("invalid SAM template: " + "; ".join(str(c) for c in e.causes))
json.dump(outputs, open(sys.argv[3], "w"))
"""


def transform_many(jobs: list[dict[str, Any]], template: Path = ROOT / "template.yaml") -> list[dict]:
    """The transformed template for each job (``{"parameters": {...}, "artifacts": {...}}``), in one
    run of the translator (a few seconds)."""
    python = sam_cli.tool_python()
    env = sam_cli.environment(python.parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        jobs_file, out_file = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs_file.write_text(json.dumps([{"parameters": j.get("parameters") or {},
                                          "artifacts": j.get("artifacts") or {}} for j in jobs]))
        r = subprocess.run([str(python), "-c", _TRANSFORM, str(template), str(jobs_file), str(out_file)],
                           env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"the SAM transform failed: {r.stderr or r.stdout}")
        return json.loads(out_file.read_text())


def transform(parameters: dict[str, str] | None = None, artifacts: dict[str, str] | None = None) -> dict:
    return transform_many([{"parameters": parameters or {}, "artifacts": artifacts or {}}])[0]


# ---------------------------------------------------------------- evaluating a transformed template

NO_VALUE = object()


def parameter_values(cfn: dict, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Every parameter's value: its default, or the override."""
    values = {name: str(p["Default"]) for name, p in cfn.get("Parameters", {}).items() if "Default" in p}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    return values


def conditions(cfn: dict, values: dict[str, str]) -> dict[str, bool]:
    """Every condition of the template, evaluated for these parameter values."""
    definitions = cfn.get("Conditions", {})
    done: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                v = values[arg]
                kind = cfn["Parameters"][arg]["Type"]
                return v.split(",") if kind == "CommaDelimitedList" and v else ([] if kind == "CommaDelimitedList" else v)
            if fn == "Fn::Join":
                sep, items = arg
                items = value(items)
                return sep.join(str(value(i)) for i in items)
            if fn == "Condition":
                return condition(arg)
            if fn == "Fn::Equals":
                a, b = (value(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not value(arg[0])
            if fn == "Fn::And":
                return all(value(x) for x in arg)
            if fn == "Fn::Or":
                return any(value(x) for x in arg)
        return node

    def condition(name: str) -> bool:
        if name not in done:
            done[name] = bool(value(definitions[name]))
        return done[name]

    for name in definitions:
        condition(name)
    return done


def evaluate(node: Any, values: dict[str, Any], conds: dict[str, bool]) -> Any:
    """``node`` with every ``Fn::If`` decided and every ``Ref`` to a parameter (or ``AWS::NoValue``)
    replaced by its value; other intrinsics are left as they are. A ``NoValue`` drops its key or item."""
    if isinstance(node, dict):
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Fn::If":
                name, yes, no = arg
                return evaluate(yes if conds[name] else no, values, conds)
            if fn == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if fn == "Ref" and arg in values:
                return values[arg]
        out = {k: evaluate(v, values, conds) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
    if isinstance(node, list):
        return [v for v in (evaluate(x, values, conds) for x in node) if v is not NO_VALUE]
    return node


def resolved(cfn: dict, overrides: dict[str, str] | None = None) -> dict:
    """The transformed template's resources as these parameters make them: only those whose condition
    holds, with every Fn::If decided."""
    values = parameter_values(cfn, overrides)
    conds = conditions(cfn, values)
    refs: dict[str, Any] = dict(values)
    for name, p in cfn.get("Parameters", {}).items():
        if p["Type"] == "CommaDelimitedList" and name in refs:
            refs[name] = refs[name].split(",") if refs[name] else []
    return {name: evaluate(r, refs, conds) for name, r in cfn["Resources"].items()
            if "Condition" not in r or conds[r["Condition"]]}


# ---------------------------------------------------------------- the connection budget

@dataclass(frozen=True)
class FunctionBudget:
    function: str
    reserved: int | None  # None: unreserved (shares the account's pool)
    pool_max: int

    @property
    def connections(self) -> int | None:
        return None if self.reserved is None else self.reserved * self.pool_max


@dataclass(frozen=True)
class ConnectionBudget:
    functions: tuple[FunctionBudget, ...]
    limit: int  # DbMaxConnections
    account_concurrency: int | None  # the account's concurrency quota in the region, when known

    @property
    def reserved_connections(self) -> int:
        return sum(f.connections or 0 for f in self.functions)

    @property
    def unreserved(self) -> list[str]:
        return [f.function for f in self.functions if f.reserved is None]

    @property
    def worst_case(self) -> int | None:
        """The most connections the functions can hold at once: every reserved sandbox busy, and the
        unreserved functions using what is left of the account's concurrency (unknown without the quota)."""
        if not self.unreserved:
            return self.reserved_connections
        if self.account_concurrency is None:
            return None
        left = max(0, self.account_concurrency - sum(f.reserved or 0 for f in self.functions))
        pool = max(f.pool_max for f in self.functions if f.reserved is None)
        return self.reserved_connections + left * pool

    @property
    def ok(self) -> bool:
        worst = self.worst_case
        return worst is not None and worst <= self.limit


def connection_budget(cfn: dict, overrides: dict[str, str] | None = None,
                      account_concurrency: int | None = None) -> ConnectionBudget:
    """Each function's reserved concurrency and pool size (``DB_POOL_MAX``) in the transformed
    template for these parameters, against ``DbMaxConnections``."""
    resources = resolved(cfn, overrides)
    values = parameter_values(cfn, overrides)
    rows = []
    for name, r in sorted(resources.items()):
        if r["Type"] != "AWS::Lambda::Function":
            continue
        props = r["Properties"]
        reserved = props.get("ReservedConcurrentExecutions")
        pool = int(props.get("Environment", {}).get("Variables", {}).get("DB_POOL_MAX", "1"))
        rows.append(FunctionBudget(name, None if reserved is None else int(reserved), pool))
    return ConnectionBudget(tuple(rows), int(values["DbMaxConnections"]), account_concurrency)
