"""The template at scale, on the TRANSFORMED template (local/cfn.py): every deploy publishes what it
ships, one API stage, the connection budget, the RDS Proxy option, and the alarms and failure paths
a production stack needs. One run of the SAM translator makes every variant the tests compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import cfn as templates
from local import sam_cli

PROXY = {"UseRdsProxy": "true", "DbAuthMode": "iam", "VpcId": "vpc-0123456789abcdef0",
         "SubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210", "SecurityGroupIds": "sg-0123456789abcdef0",
         "DbSecretArn": "arn:aws:secretsmanager:af-south-1:123456789012:secret:chat-app-AbCdEf",
         "DbMigrationSecretArn": "arn:aws:secretsmanager:af-south-1:123456789012:secret:chat-owner-AbCdEf",
         "DbInstanceIdentifier": "chat-db", "DbSecurityGroupId": "sg-0aaaaaaaaaaaaaaaa"}
# A production stack's reservations on a raised quota (docs/operations.md, "Connection budget").
PRODUCTION = {"ChatReservedConcurrency": "40", "EventsReservedConcurrency": "20", "ApiReservedConcurrency": "15",
              "AccountReservedConcurrency": "2", "ScheduledReservedConcurrency": "1", "MigrateReservedConcurrency": "1",
              "SpoolReservedConcurrency": "1", "DbMaxConnections": "80"}
FUNCTIONS = ("ChatFunction", "EventsFunction", "ApiFunction", "AccountFunction", "ScheduledFunction", "MigrateFunction",
             "SpoolFunction")


def _build(root: Path, core: str = "chatcore v1") -> Path:
    """A stand-in for `sam build`'s output folder: the built template and the versioned functions' folders."""
    build = root / ".aws-sam" / "build"
    for name in sam_cli.VERSIONED:
        (build / name).mkdir(parents=True, exist_ok=True)
        (build / name / "module.py").write_text(f"# {name}\n")
    (build / "CoreLayer" / "python").mkdir(exist_ok=True)
    (build / "CoreLayer" / "python" / "chatcore.py").write_text(core)
    (build / "template.yaml").write_text("Resources: {}\n")
    return build


@pytest.fixture(scope="module")
def deploy_ids(tmp_path_factory) -> dict[str, str]:
    """The DeployId bin/sam deploy gives each deploy below."""
    build = _build(tmp_path_factory.mktemp("build"))
    return {"first": sam_cli.deploy_id(build, {"DbEndpoint": "db-a.example"}),
            "again": sam_cli.deploy_id(build, {"DbEndpoint": "db-a.example"}),
            "endpoint": sam_cli.deploy_id(build, {"DbEndpoint": "db-b.example"})}


@pytest.fixture(scope="module")
def variants(deploy_ids) -> dict[str, dict]:
    jobs = {
        "default": {},
        "core-layer": {"artifacts": {"CoreLayer": "s3://artifacts/CoreLayer-changed.zip"}},
        "agents-layer": {"artifacts": {"AgentsLayer": "s3://artifacts/AgentsLayer-changed.zip"}},
        "chat-code": {"artifacts": {"ChatFunction": "s3://artifacts/ChatFunction-changed.zip"}},
        "first": {"parameters": {"DbEndpoint": "db-a.example", "DeployId": deploy_ids["first"]}},
        "again": {"parameters": {"DbEndpoint": "db-a.example", "DeployId": deploy_ids["again"]}},
        "endpoint": {"parameters": {"DbEndpoint": "db-b.example", "DeployId": deploy_ids["endpoint"]}},
        "proxy": {"parameters": PROXY},
    }
    return dict(zip(jobs, templates.transform_many(list(jobs.values()))))


def _version(cfn: dict, function: str) -> str:
    (name,) = [n for n, r in cfn["Resources"].items()
               if r["Type"] == "AWS::Lambda::Version" and n.startswith(f"{function}Version")]
    return name


def _alias_target(cfn: dict, function: str) -> str:
    alias = cfn["Resources"][f"{function}Aliaslive"]["Properties"]
    return alias["FunctionVersion"]["Fn::GetAtt"][0]


# ---------------------------------------------------------------- every deploy ships what was built

def test_a_layer_or_code_change_publishes_a_new_chat_version_and_moves_the_alias(variants):
    base = variants["default"]
    for variant in ("core-layer", "agents-layer", "chat-code"):
        cfn = variants[variant]
        assert _version(cfn, "ChatFunction") != _version(base, "ChatFunction"), variant
        assert _alias_target(cfn, "ChatFunction") == _version(cfn, "ChatFunction"), variant
    # the core layer is in the migration function too: the migrations run against the new code
    assert _version(variants["core-layer"], "MigrateFunction") != _version(base, "MigrateFunction")
    migrations = variants["core-layer"]["Resources"]["DatabaseMigrations"]["Properties"]["MigrationsVersion"]
    assert migrations == {"Ref": _version(variants["core-layer"], "MigrateFunction")}


def test_a_parameter_change_alone_publishes_new_versions_through_the_deploy_id(variants, deploy_ids):
    # bin/sam deploy: the same build and the same values give the same id (nothing is published)...
    assert deploy_ids["first"] == deploy_ids["again"]
    assert _version(variants["first"], "ChatFunction") == _version(variants["again"], "ChatFunction")
    # ...a new DbEndpoint a new one: the chat alias moves and the migrations run on the new database
    assert deploy_ids["endpoint"] != deploy_ids["first"]
    for function in ("ChatFunction", "MigrateFunction"):
        assert _version(variants["endpoint"], function) != _version(variants["first"], function), function
        assert _alias_target(variants["endpoint"], function) == _version(variants["endpoint"], function)
    # the function's configuration changes with the id (its description), so Lambda publishes a version
    chat = variants["endpoint"]["Resources"]["ChatFunction"]["Properties"]
    assert chat["Description"].endswith(deploy_ids["endpoint"])
    version = variants["endpoint"]["Resources"][_version(variants["endpoint"], "ChatFunction")]["Properties"]
    assert version["Description"] == {"Fn::Sub": "deploy ${DeployId}"}


def test_a_replaced_version_is_deleted_with_its_snapshot(variants):
    for function in ("ChatFunction", "MigrateFunction"):
        version = variants["default"]["Resources"][_version(variants["default"], function)]
        assert version["DeletionPolicy"] == "Delete", function


def test_the_deploy_id_covers_the_build_and_the_given_values(tmp_path):
    build = _build(tmp_path / "one")
    same = _build(tmp_path / "two")
    assert sam_cli.deploy_id(build, {"A": "1", "B": "2"}) == sam_cli.deploy_id(same, {"B": "2", "A": "1"})
    other_layer = _build(tmp_path / "three", core="chatcore v2")
    assert sam_cli.deploy_id(other_layer, {}) != sam_cli.deploy_id(build, {})
    assert sam_cli.deploy_id(build, {"WebAdapterLayerVersion": "31"}) != sam_cli.deploy_id(build, {})
    # an id already in samconfig's overrides is not part of the next one
    assert sam_cli.deploy_id(build, {"DeployId": "ab" * 16}) == sam_cli.deploy_id(build, {})


def test_bin_sam_deploy_adds_the_deploy_id_to_samconfig_s_or_the_command_line_s_overrides(tmp_path, capsys):
    build = _build(tmp_path)
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\n'
        'parameter_overrides = "Architecture=arm64 DbEndpoint=db.example ScheduleExpression=\\"cron(15 0 * * ? *)\\" DeployId=00000000000000000000000000000000"\n')
    args = sam_cli.with_deploy_id(["deploy", "--no-confirm-changeset"], tmp_path)
    expected = sam_cli.deploy_id(build, {"Architecture": "arm64", "DbEndpoint": "db.example",
                                         "ScheduleExpression": "cron(15 0 * * ? *)"})
    assert args == ["deploy", "--no-confirm-changeset", "--parameter-overrides", "Architecture=arm64",
                    "DbEndpoint=db.example", 'ScheduleExpression="cron(15 0 * * ? *)"', f"DeployId={expected}"]
    # the command line's overrides replace samconfig's (as in sam deploy)
    args = sam_cli.with_deploy_id(["deploy", "--parameter-overrides", "DbEndpoint=other.example"], tmp_path)
    assert args[-2:] == ["DbEndpoint=other.example", f"DeployId={sam_cli.deploy_id(build, {'DbEndpoint': 'other.example'})}"]
    assert "DeployId=" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="bin/sam build"):
        sam_cli.with_deploy_id(["deploy"], tmp_path / "elsewhere")


# ---------------------------------------------------------------- one stage

def test_the_api_has_exactly_one_stage_with_its_throttling_access_logs_and_tracing(variants):
    resources = variants["default"]["Resources"]
    stages = {n: r for n, r in resources.items() if r["Type"] == "AWS::ApiGateway::Stage"}
    (stage,) = stages.values()
    props = stage["Properties"]
    assert props["StageName"] == {"Ref": "StageName"} and props["TracingEnabled"] is True
    assert props["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    settings = {s["ResourcePath"]: s for s in props["MethodSettings"]}
    assert settings["/*"]["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert settings["/~1sessions~1{id}~1turns"]["ThrottlingBurstLimit"] == {"Ref": "TurnBurstLimit"}
    # no deployment makes a stage of its own (SAM's "Stage" stage, with none of the above)
    for name, r in resources.items():
        if r["Type"] == "AWS::ApiGateway::Deployment":
            assert "StageName" not in r["Properties"], name


# ---------------------------------------------------------------- the connection budget

def test_by_default_no_function_reserves_concurrency_so_an_account_with_a_quota_of_10_can_deploy(variants):
    cfn = variants["default"]
    resources = templates.resolved(cfn)
    for function in FUNCTIONS:
        assert "ReservedConcurrentExecutions" not in resources[function]["Properties"], function
        assert resources[function]["Properties"]["Environment"]["Variables"]["DB_POOL_MAX"] == "1", function
    budget = templates.connection_budget(cfn, account_concurrency=10)
    assert set(budget.unreserved) == set(FUNCTIONS)
    assert budget.worst_case == 10 and budget.ok  # at most the account's 10 sandboxes, one connection each
    # without the quota nothing bounds the unreserved functions: the budget cannot be said to hold
    assert templates.connection_budget(cfn).worst_case is None and not templates.connection_budget(cfn).ok


def test_every_function_s_reserved_concurrency_times_its_pool_fits_db_max_connections(variants):
    cfn = variants["default"]
    resources = templates.resolved(cfn, PRODUCTION)
    for function in FUNCTIONS:
        name = function.removesuffix("Function")
        assert resources[function]["Properties"]["ReservedConcurrentExecutions"] == PRODUCTION[f"{name}ReservedConcurrency"]
    budget = templates.connection_budget(cfn, PRODUCTION)
    assert budget.unreserved == [] and budget.reserved_connections == 80
    assert budget.worst_case == 80 <= budget.limit == 80 and budget.ok
    over = templates.connection_budget(cfn, {**PRODUCTION, "DbMaxConnections": "60"})
    assert not over.ok
    # one unreserved function takes what the rest of the account's concurrency allows
    partly = templates.connection_budget(cfn, {**PRODUCTION, "ApiReservedConcurrency": "0"}, account_concurrency=1000)
    assert partly.unreserved == ["ApiFunction"] and partly.worst_case == 65 + (1000 - 65) and not partly.ok


# ---------------------------------------------------------------- RDS Proxy

def test_use_rds_proxy_adds_a_proxy_with_iam_auth_and_points_every_function_at_it(variants):
    cfn = variants["proxy"]
    resources = templates.resolved(cfn, PROXY)
    proxy = resources["DbProxy"]["Properties"]
    assert proxy["EngineFamily"] == "POSTGRESQL" and proxy["RequireTLS"] is True
    assert [(a["SecretArn"], a["IAMAuth"], a["AuthScheme"]) for a in proxy["Auth"]] == [
        (PROXY["DbSecretArn"], "REQUIRED", "SECRETS"), (PROXY["DbMigrationSecretArn"], "REQUIRED", "SECRETS")]
    assert proxy["VpcSubnetIds"] == PROXY["SubnetIds"].split(",")
    assert proxy["VpcSecurityGroupIds"] == [{"Ref": "DbProxySecurityGroup"}]
    assert resources["DbProxyTargetGroup"]["Properties"]["DBInstanceIdentifiers"] == ["chat-db"]
    # the proxy reads the two users' secrets and nothing else
    role = resources["DbProxyRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "rds.amazonaws.com"}
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == [{"Fn::Sub": "${DbSecretArn}"}, {"Fn::Sub": "${DbMigrationSecretArn}"}]
    # only the functions' group reaches the proxy, and the proxy reaches the database
    (ingress,) = resources["DbProxySecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "DbClientSecurityGroup"} and ingress["FromPort"] == 5432
    db_ingress = resources["DbIngressFromProxy"]["Properties"]
    assert db_ingress["GroupId"] == PROXY["DbSecurityGroupId"]
    assert db_ingress["SourceSecurityGroupId"] == {"Ref": "DbProxySecurityGroup"}
    for function in FUNCTIONS:
        props = resources[function]["Properties"]
        env = props["Environment"]["Variables"]
        assert env["DB_HOST"] == {"Fn::GetAtt": ["DbProxy", "Endpoint"]} and env["DB_PORT"] == "5432", function
        assert env["DB_IAM_AUTH"] == "1", function
        groups = props["VpcConfig"]["SecurityGroupIds"]["Fn::Split"][1]["Fn::Join"][1]
        assert {"Ref": "DbClientSecurityGroup"} in groups, function
    # IAM tokens are for the proxy: rds-db:connect on its prx-... id (the last part of its ARN)
    for policy in ("AppDatabaseAccessPolicy", "MigrationDatabaseAccessPolicy"):
        (statement,) = resources[policy]["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "rds-db:connect"
        assert statement["Resource"]["Fn::Sub"][1]["ResourceId"] == {
            "Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["DbProxy", "DBProxyArn"]}]}]}, policy


def test_without_the_proxy_the_functions_use_db_endpoint(variants):
    resources = templates.resolved(variants["default"], {"DbEndpoint": "db.example", "DbResourceId": "db-ABC"})
    assert not {"DbProxy", "DbProxyTargetGroup", "DbProxyRole", "DbProxySecurityGroup", "DbClientSecurityGroup",
                "DbIngressFromProxy"} & set(resources)
    for function in FUNCTIONS:
        assert resources[function]["Properties"]["Environment"]["Variables"]["DB_HOST"] == "db.example", function
    (statement,) = resources["AppDatabaseAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"]["Fn::Sub"][1]["ResourceId"] == "db-ABC"


def _rule_refuses(cfn: dict, rule: str, overrides: dict[str, str]) -> bool:
    """Whether CloudFormation's Rule ``rule`` refuses a deploy with these parameter values."""
    spec = cfn["Rules"][rule]
    checks = {"when": spec.get("RuleCondition", {"Fn::Equals": ["a", "a"]}),
              **{f"assert{i}": a["Assert"] for i, a in enumerate(spec["Assertions"])}}
    outcome = templates.conditions({"Parameters": cfn["Parameters"], "Conditions": checks},
                                   templates.parameter_values(cfn, overrides))
    return outcome["when"] and not all(v for k, v in outcome.items() if k != "when")


def test_the_proxy_s_needs_are_checked_before_anything_is_made(variants):
    cfn = variants["default"]
    assert not _rule_refuses(cfn, "RdsProxyNeeds", PROXY)
    for missing in ("VpcId", "DbSecretArn", "DbMigrationSecretArn", "SubnetIds", "SecurityGroupIds", "DbInstanceIdentifier"):
        assert _rule_refuses(cfn, "RdsProxyNeeds", {**PROXY, missing: ""}), missing
    assert not _rule_refuses(cfn, "RdsProxyNeeds", {**PROXY, "DbInstanceIdentifier": "", "DbClusterIdentifier": "aurora"})
    assert _rule_refuses(cfn, "RdsProxyNeeds", {**PROXY, "DbAuthMode": "secret"})
    assert _rule_refuses(cfn, "DbNeedsEndpoint", {}) and not _rule_refuses(cfn, "DbNeedsEndpoint", PROXY)


# ---------------------------------------------------------------- failures, alarms, what outlives the stack

def test_a_production_stack_refuses_to_deploy_when_its_alarms_notify_no_one(variants):
    cfn = variants["default"]
    assert cfn["Parameters"]["Production"]["Default"] == "true"
    assert _rule_refuses(cfn, "ProductionAlarmsNotifySomeone", {})
    assert not _rule_refuses(cfn, "ProductionAlarmsNotifySomeone", {"AlarmEmail": "ops@example.com"})
    assert not _rule_refuses(cfn, "ProductionAlarmsNotifySomeone",
                             {"AlarmTopicArn": "arn:aws:sns:af-south-1:123456789012:pager"})
    # a trial stack deploys, and says so in its outputs
    assert not _rule_refuses(cfn, "ProductionAlarmsNotifySomeone", {"Production": "false"})
    output = cfn["Outputs"]["AlarmsNotifyNoOne"]
    assert output["Condition"] == "AlarmsNotifyNoOne"
    values = templates.parameter_values(cfn, {"Production": "false"})
    assert templates.conditions(cfn, values)["AlarmsNotifyNoOne"]
    assert not templates.conditions(cfn, {**values, "AlarmEmail": "ops@example.com"})["AlarmsNotifyNoOne"]


def test_every_function_has_an_errors_alarm_and_every_failure_destination_a_delivery_alarm(variants):
    resources = variants["default"]["Resources"]
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]

    def watched(metric: str) -> set[str]:
        found = set()
        for a in alarms:
            stats = [a] if "MetricName" in a else [m["MetricStat"]["Metric"] for m in a.get("Metrics", []) if "MetricStat" in m]
            for m in stats:
                if m["MetricName"] == metric and m["Namespace"] == "AWS/Lambda":
                    found |= {d["Value"]["Ref"] for d in m["Dimensions"] if d["Name"] == "FunctionName"}
        return found

    assert watched("Errors") == set(FUNCTIONS)
    with_destinations = {c["Properties"]["FunctionName"]["Ref"] for c in resources.values()
                         if c["Type"] == "AWS::Lambda::EventInvokeConfig"
                         and "OnFailure" in c["Properties"].get("DestinationConfig", {})}
    assert with_destinations == {"ScheduledFunction", "AccountFunction", "MigrateFunction"}
    assert watched("DestinationDeliveryFailures") == with_destinations
    # the deploy's migration invoke: never retried, its failure kept and alarmed
    (config,) = [c["Properties"] for c in resources.values() if c["Type"] == "AWS::Lambda::EventInvokeConfig"
                 and c["Properties"]["FunctionName"] == {"Ref": "MigrateFunction"}]
    assert config["MaximumRetryAttempts"] == 0
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["MigrateFailures", "Arn"]}
    assert any(a.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["MigrateFailures", "QueueName"]}}]
               for a in alarms)


def test_the_api_gateway_logging_role_outlives_the_stack(variants):
    resources = variants["default"]["Resources"]
    for name in ("ApiGatewayLogRole", "ApiGatewayAccount"):
        assert resources[name]["DeletionPolicy"] == "Retain" and resources[name]["UpdateReplacePolicy"] == "Retain", name


def test_the_proxy_variant_passes_cfn_lint(variants, tmp_path):
    import subprocess

    path = tmp_path / "proxy.json"
    path.write_text(json.dumps(variants["proxy"]))
    home = sam_cli.ensure()
    r = subprocess.run([str(home / "bin" / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=300,
                       env=sam_cli.environment(home))
    assert r.returncode == 0, r.stdout + r.stderr


def test_bin_sam_deploy_refuses_a_build_of_another_architecture(tmp_path):
    build = _build(tmp_path)
    elf = bytearray(64)
    elf[:4], elf[18:20] = b"\x7fELF", (62).to_bytes(2, "little")  # EM_X86_64
    (build / "CoreLayer" / "python" / "_native.cpython-313-x86_64-linux-gnu.so").write_bytes(bytes(elf))
    assert sam_cli.built_architecture(build) == "x86_64"
    with pytest.raises(SystemExit, match="for x86_64 but this deploy says Architecture=arm64"):
        sam_cli.with_deploy_id(["deploy", "--parameter-overrides", "Architecture=arm64"], tmp_path)
    args = sam_cli.with_deploy_id(["deploy", "--parameter-overrides", "Architecture=x86_64"], tmp_path)
    assert "Architecture=x86_64" in args


def test_the_chat_role_s_photo_pattern_matches_a_session_s_photos_and_nothing_else(variants):
    """The chat role writes under a pattern of IAM wildcards: it must match every key the key rule
    makes for a session's photo, and neither an export nor an upload's original."""
    import fnmatch
    import uuid

    from chatcore.media import keys

    statements = [s for p in variants["default"]["Resources"]["ChatFunctionRole"]["Properties"]["Policies"]
                  if "PolicyDocument" in p  # the push policy is under a condition (PushOn): not S3
                  for s in p["PolicyDocument"]["Statement"]]
    (photos,) = [s for s in statements if "s3:PutObject" in s["Action"]]
    pattern = photos["Resource"]["Fn::Sub"].removeprefix("${MediaBucket.Arn}/").replace("${MediaPrefix}", "media/")
    for mime in ("image/jpeg", "image/png", "image/webp"):
        key = keys.media_key("media/", uuid.uuid4(), b"photo bytes", mime)
        assert fnmatch.fnmatchcase(key, pattern), key  # IAM's * and ? are fnmatch's (no [...] in the pattern)
    assert not fnmatch.fnmatchcase(keys.export_key("media/", uuid.uuid4()), pattern)
    assert not fnmatch.fnmatchcase(keys.upload_key("media/", uuid.uuid4()), pattern)
