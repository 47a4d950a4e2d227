"""Before a deploy: does this account and region take the stack as samconfig.toml (and the command
line) configure it? ``bin/preflight REGION [--parameter-overrides K=V ...] [--config-env ENV]``.

Read-only calls only (Lambda ``GetAccountSettings`` and ``GetLayerVersion``); what no API tells is read
from local/regions.json (its sources and dates inside). Each check prints OK, WARN or FAIL and, when
not OK, what to change. Exit status: 0 when nothing FAILs (or no credentials: skipped, said so), 1
otherwise, 2 for bad arguments.

Checks:
- concurrency: the account's quota in the region and what is left unreserved, against the stack's
  reserved concurrency (Lambda keeps 100 unreserved: a new account or region whose quota is 10
  can reserve nothing);
- the connection budget: reserved concurrency x pool size per function (the unreserved ones up to the
  account's quota) within DbMaxConnections, on the transformed template (local/cfn.py);
- the Lambda Web Adapter layer the template uses (WebAdapterLayerVersion, the Architecture's layer)
  is published in the region;
- SnapStart for python3.13, and response streaming (API Gateway's, and Lambda's, which AWS lists as not
  in every region: unconfirmed regions are a WARN saying how to confirm);
- the shipped Postgres CA bundle has the region's RDS root CA (verify-full).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REGIONS = ROOT / "local" / "regions.json"
WEB_ADAPTER_ACCOUNT = "753240598075"
WEB_ADAPTER_LAYERS = {"arm64": "LambdaAdapterLayerArm64", "x86_64": "LambdaAdapterLayerX86"}
LAMBDA_MIN_UNRESERVED = 100
RESERVED = ("ChatReservedConcurrency", "EventsReservedConcurrency", "ApiReservedConcurrency",
            "AccountReservedConcurrency", "ScheduledReservedConcurrency", "MigrateReservedConcurrency",
            "SpoolReservedConcurrency")


@dataclass
class Check:
    name: str
    status: str  # OK, WARN, FAIL
    detail: str
    change: str = ""


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """samconfig.toml's parameter overrides, with the command line's on top."""
    from local import sam_cli

    config = ["--config-env", args.config_env] if args.config_env else []
    values = sam_cli.config_overrides(config, ROOT)
    if args.parameter_overrides:
        values.update(sam_cli.parse_overrides(" ".join(args.parameter_overrides)))
    return values


def check_concurrency(settings: dict, params: dict[str, str]) -> Check:
    limit = settings["AccountLimit"]
    quota, unreserved = int(limit["ConcurrentExecutions"]), int(limit["UnreservedConcurrentExecutions"])
    wanted = {name: int(params.get(name, "0") or 0) for name in RESERVED}
    total = sum(wanted.values())
    detail = f"quota {quota}, unreserved now {unreserved}; this stack reserves {total}"
    if total == 0:
        return Check("concurrency", "OK", detail + " (every function unreserved)")
    named = ", ".join(f"{k}={v}" for k, v in wanted.items() if v)
    if quota - total < LAMBDA_MIN_UNRESERVED:
        return Check("concurrency", "FAIL", detail + f": Lambda keeps {LAMBDA_MIN_UNRESERVED} unreserved, so at most "
                     f"{max(0, quota - LAMBDA_MIN_UNRESERVED)} can be reserved in this region",
                     f"set {named} to 0 (unreserved), or ask for a higher 'Concurrent executions' quota "
                     "(Service Quotas, AWS Lambda, L-B99A9384) and run bin/preflight again")
    if unreserved - total < LAMBDA_MIN_UNRESERVED:
        return Check("concurrency", "WARN", detail + f": that leaves {unreserved - total} unreserved, under "
                     f"Lambda's {LAMBDA_MIN_UNRESERVED}, unless this stack already holds these reservations",
                     f"lower {named}, free other functions' reservations, or raise the quota")
    return Check("concurrency", "OK", detail)


def check_budget(cfn: dict, params: dict[str, str], quota: int | None) -> Check:
    from local.cfn import connection_budget

    budget = connection_budget(cfn, params, account_concurrency=quota)
    rows = ", ".join(f"{f.function.removesuffix('Function').lower()} "
                     f"{'unreserved' if f.reserved is None else f.reserved} x {f.pool_max}" for f in budget.functions)
    worst = budget.worst_case
    detail = f"at most {worst if worst is not None else 'unbounded'} connections of DbMaxConnections={budget.limit} ({rows})"
    if budget.ok:
        return Check("connection budget", "OK", detail)
    return Check("connection budget", "FAIL", detail,
                 "reserve concurrency on every function so that the sum of reserved x pool size stays within "
                 "DbMaxConnections (docs/operations.md, Connection budget), or raise DbMaxConnections to what the "
                 "database (or RDS Proxy) accepts")


def check_web_adapter(client: Any, region: str, params: dict[str, str]) -> Check:
    from botocore.exceptions import ClientError

    arch, version = params["Architecture"], params["WebAdapterLayerVersion"]
    arn = f"arn:{partition(region)}:lambda:{region}:{WEB_ADAPTER_ACCOUNT}:layer:{WEB_ADAPTER_LAYERS[arch]}"
    try:
        layer = client.get_layer_version(LayerName=arn, VersionNumber=int(version))
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        return Check("web adapter layer", "FAIL", f"{arn}:{version}: {code or e}",
                     "the Lambda Web Adapter is not published (or not shared) in this region at that version: "
                     "choose a region where it is, or a WebAdapterLayerVersion that exists there (30 or later)")
    archs = layer.get("CompatibleArchitectures") or []
    if archs and arch not in archs:
        return Check("web adapter layer", "FAIL", f"{arn}:{version} is for {', '.join(archs)}, not {arch}",
                     f"set Architecture to one of {', '.join(archs)}")
    return Check("web adapter layer", "OK", f"{layer.get('LayerVersionArn', f'{arn}:{version}')}")


def check_regions(region: str, regions: dict) -> list[Check]:
    snap = regions["snapstart"]
    checks = []
    if partition(region) != snap["partition"]:
        checks.append(Check("snapstart", "WARN", f"{region} is not a commercial region; the list covers those only "
                            f"(read {snap['read']})", "check SnapStart for python3.13 there before deploying"))
    elif region in snap["except"]:
        checks.append(Check("snapstart", "FAIL", f"SnapStart is not available in {region} ({snap['source']}, read "
                            f"{snap['read']})", "deploy in another region (the chat function needs SnapStart)"))
    else:
        checks.append(Check("snapstart", "OK", f"python3.13 SnapStart in {region} (local/regions.json, read {snap['read']})"))
    apigw, lam = regions["api_gateway_streaming"], regions["lambda_streaming"]
    confirmed = lam["confirmed"].get(region)
    if confirmed:
        checks.append(Check("response streaming", "OK", f"a turn streamed end to end in {region} on {confirmed}"))
    else:
        checks.append(Check(
            "response streaming", "WARN",
            f"API Gateway streams in every region (read {apigw['read']}), but AWS lists Lambda response streaming "
            f"as not yet in all regions, and {region} is not confirmed in local/regions.json",
            f"look up 'Lambda response streaming' for {region} in AWS Capabilities by Region, or deploy a trial "
            "stack (Production=false) and run bin/smoke (it streams a turn); then add the region and the date "
            "under lambda_streaming.confirmed"))
    return checks


def check_ca_bundle(region: str) -> Check:
    from cryptography import x509

    from chatcore.db import CA_BUNDLE

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an old RDS CA's serial number is negative: cryptography warns
        names = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(CA_BUNDLE.read_bytes())]
    if any(f"Amazon RDS {region} Root CA" in n for n in names):
        return Check("postgres CA bundle", "OK", f"{CA_BUNDLE.name} has Amazon RDS {region}'s root CAs")
    return Check("postgres CA bundle", "WARN", f"{CA_BUNDLE.name} has no Amazon RDS root CA for {region} (RDS Proxy's "
                 "Amazon roots are there: UseRdsProxy=true verifies)",
                 "without a proxy: python -m local.certs --rds-bundle <global-bundle.pem downloaded from AWS> "
                 "(local/certs.py says where), then bin/sam build")


def run(region: str, params: dict[str, str]) -> list[Check]:
    import boto3
    from botocore.config import Config

    from local import cfn as templates

    client = boto3.client("lambda", region_name=region,
                          config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2}))
    transformed = templates.transform(params)
    values = templates.parameter_values(transformed, params)
    settings = client.get_account_settings()
    checks = [check_concurrency(settings, values),
              check_budget(transformed, params, int(settings["AccountLimit"]["ConcurrentExecutions"])),
              check_web_adapter(client, region, values)]
    checks += check_regions(region, json.loads(REGIONS.read_text()))
    checks.append(check_ca_bundle(region))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("region")
    parser.add_argument("--parameter-overrides", nargs="+", metavar="KEY=VALUE",
                        help="on top of samconfig.toml's (as bin/sam deploy would pass them)")
    parser.add_argument("--config-env", help="samconfig.toml's environment (default: default)")
    args = parser.parse_args(argv)
    import boto3

    if boto3.Session(region_name=args.region).get_credentials() is None:
        print(f"preflight: SKIPPED: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
              f"AWS_SECRET_ACCESS_KEY, for the account you deploy to); nothing in {args.region} was checked")
        return 0
    checks = run(args.region, overrides(args))
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.status:4}  {c.name:{width}}  {c.detail}")
        if c.change:
            print(f"{'':4}  {'':{width}}  -> {c.change}")
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(f"preflight: {args.region}: " + (f"FAIL ({', '.join(failed)})" if failed else "no blocker"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
