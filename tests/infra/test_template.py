"""template.yaml as CloudFormation will see it: transformed by the SAM translator, linted by cfn-lint,
and checked where a wrong property fails silently (streaming, a leaky bucket, agno in the wrong function).

The translator and cfn-lint are the SAM CLI's own (its tool venv, see local/sam_cli.py): the same
versions `sam build` and `sam deploy` use. Assertions are on the TRANSFORMED template (local/cfn.py):
SAM accepts `ResponseTransferMode: STREAM` and quietly builds a buffered integration (field notes).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from local import cfn as templates
from local import layers, sam_cli
from local.invoke import load_template
from local.invoke import ROOT

LWA_LAYERS = {"arm64": "LambdaAdapterLayerArm64", "x86_64": "LambdaAdapterLayerX86"}
LWA_ARN = "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:%s:${WebAdapterLayerVersion}"


def _web_adapter(layers: list) -> bool:
    """The Web Adapter layer of the function's architecture: arm64's by default, x86_64's otherwise."""
    for layer in layers:
        if isinstance(layer, dict) and "Fn::If" in layer:
            condition, arm, x86 = layer["Fn::If"]
            if condition == "IsArm64" and _sub(arm) == LWA_ARN % LWA_LAYERS["arm64"] \
                    and _sub(x86) == LWA_ARN % LWA_LAYERS["x86_64"]:
                return True
    return False


@pytest.fixture(scope="module")
def transformed_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("sam") / "transformed.json"
    out.write_text(json.dumps(templates.transform(), indent=1))
    return out


@pytest.fixture(scope="module")
def cfn(transformed_path) -> dict:
    return json.loads(transformed_path.read_text())


@pytest.fixture(scope="module")
def resources(cfn) -> dict:
    return cfn["Resources"]


def _of_type(resources: dict, kind: str) -> dict:
    return {n: r for n, r in resources.items() if r["Type"] == kind}


def _function(resources: dict, name: str) -> dict:
    return resources[name]["Properties"]


def _statements(resources: dict, function: str) -> list[dict]:
    role = resources[f"{function}Role"]["Properties"]
    # a policy under a condition (push notifications: PushOn) counts as when it holds
    policies = [p["Fn::If"][1] if "Fn::If" in p else p for p in role.get("Policies") or []]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def _actions(statement: dict) -> list[str]:
    a = statement["Action"]
    return a if isinstance(a, list) else [a]


def _sub(value) -> str:
    """The text of a string or an Fn::Sub."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        v = value["Fn::Sub"]
        return v if isinstance(v, str) else v[0]
    return value if isinstance(value, str) else json.dumps(value)


def _routes(resources: dict) -> dict[tuple[str, str], dict]:
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    return {(method.upper(), path): op for path, ops in api["Properties"]["Body"]["paths"].items()
            for method, op in ops.items() if method != "options"}


def test_cfn_lint_passes_on_the_transformed_template(transformed_path):
    cfn_lint = sam_cli.ensure() / "bin" / "cfn-lint"
    r = subprocess.run([str(cfn_lint), str(transformed_path)], capture_output=True, text=True, timeout=300,
                       env=sam_cli.environment(sam_cli.ensure()))
    assert r.returncode == 0, r.stdout + r.stderr


STREAMED = {("POST", "/sessions/{id}/turns"): "ChatFunction",
            # a JSON answer, invoked as the chat function's other routes (its Web Adapter streams)
            ("POST", "/sessions/{id}/turns/estimate"): "ChatFunction",
            ("POST", "/sessions/{id}/turns/{run_id}/approvals"): "ChatFunction",
            ("GET", "/sessions/{id}/turns/{run_id}/events"): "EventsFunction"}


def test_only_the_turn_and_its_events_stream(resources):
    routes = _routes(resources)
    for route, function in STREAMED.items():
        turn = routes[route]["x-amazon-apigateway-integration"]
        assert _sub(turn["uri"]).endswith("/response-streaming-invocations"), route
        # the chat function's SnapStart version: the integration calls its alias, never $LATEST
        target = "${ChatFunctionAliaslive}" if function == "ChatFunction" else f"${{{function}.Arn}}"
        assert target in _sub(turn["uri"]), route
        assert turn["responseTransferMode"] == "STREAM", route
        # a turn: the function's 15 minutes, not API Gateway's 29 s; an estimate answers at once
        assert turn["timeoutInMillis"] == (29000 if route[1].endswith("/estimate") else 900000), route
    others = {k: v for k, v in routes.items() if k not in STREAMED}
    assert len(others) == 26
    for route, op in others.items():
        integration = op["x-amazon-apigateway-integration"]
        assert _sub(integration["uri"]).endswith("/invocations"), route
        assert not _sub(integration["uri"]).endswith("/response-streaming-invocations"), route
        assert integration.get("responseTransferMode", "BUFFERED") == "BUFFERED", route
        assert "${ApiFunction.Arn}" in _sub(integration["uri"]), route


EVENTS_ROUTE = ("GET", "/sessions/{id}/turns/{run_id}/events")


def test_every_route_is_cognito_authorized_and_the_api_is_regional_logged_and_throttled(resources):
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    body = api["Properties"]["Body"]
    assert api["Properties"]["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    scheme = body["components"]["securitySchemes"]["CognitoAuthorizer"]
    assert scheme["x-amazon-apigateway-authtype"] == "cognito_user_pools"
    for route, op in _routes(resources).items():  # the events route checks its tokens itself (below)
        assert op["security"] == ([{"NONE": []}] if route == EVENTS_ROUTE else [{"CognitoAuthorizer": []}]), route
    assert {("GET", "/agents"), ("GET", "/teams"), ("POST", "/sessions"), ("GET", "/sessions"),
            ("GET", "/sessions/{id}"), ("PATCH", "/sessions/{id}"), ("DELETE", "/sessions/{id}"),
            ("GET", "/sessions/{id}/messages"), ("GET", "/usage"), ("POST", "/sessions/{id}/turns"),
            EVENTS_ROUTE, ("POST", "/sessions/{id}/turns/{run_id}/cancel"),
            ("POST", "/sessions/{id}/turns/{run_id}/resume-token"),
            ("POST", "/uploads"), ("DELETE", "/me"), ("GET", "/me/deletion"), ("POST", "/me/export"),
            ("GET", "/me/export"), ("GET", "/me/memories"), ("DELETE", "/me/memories"),
            ("PATCH", "/me/memories/{id}"), ("DELETE", "/me/memories/{id}"), ("GET", "/me/settings"),
            ("PUT", "/me/settings"), ("POST", "/sessions/{id}/turns/{run_id}/approvals"),
            ("GET", "/me/reminders"), ("POST", "/me/devices"), ("GET", "/me/devices"),
            ("DELETE", "/me/devices/{id}"), ("POST", "/sessions/{id}/turns/estimate")} == set(_routes(resources))
    (stage,) = _of_type(resources, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    throttles = {s["ResourcePath"]: s for s in props["MethodSettings"]}
    assert "ThrottlingRateLimit" in throttles["/*"] and "ThrottlingBurstLimit" in throttles["/*"]
    assert "ThrottlingRateLimit" in throttles["/~1sessions~1{id}~1turns"]
    assert props["TracingEnabled"] is True
    # CORS preflight answered without the authorizer (test_browsers_... below)
    paths = body["paths"]
    assert all(ops["options"].get("security", [{"NONE": []}]) == [{"NONE": []}] for ops in paths.values())


def test_the_events_route_takes_a_bearer_token_checked_by_its_function_or_a_resume_token_never_logged(cfn, resources):
    """A browser's EventSource cannot send Authorization: the events route has no authorizer, its
    function checks a bearer token against the stack's user pool itself (COGNITO_ISSUER) or takes a
    resume token from the query. No log or trace keeps a query string: the access log format names
    none, the stage has no execution logs, and resumes are never sampled by X-Ray."""
    issuer = _function(resources, "EventsFunction")["Environment"]["Variables"]["COGNITO_ISSUER"]
    condition, created, existing = issuer["Fn::If"]
    assert condition == "CreateUserPool"
    assert created == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    assert existing["Fn::Sub"][0] == "https://cognito-idp.${PoolRegion}.amazonaws.com/${PoolId}"
    for name in ("ChatFunction", "ApiFunction"):  # behind the authorizer: its claims, never a token of their own
        assert "COGNITO_ISSUER" not in _function(resources, name)["Environment"]["Variables"], name
    (stage,) = _of_type(resources, "AWS::ApiGateway::Stage").values()
    access_log = stage["Properties"]["AccessLogSetting"]["Format"]
    assert "$context.resourcePath" in access_log
    assert not re.search(r"\$context\.(path|requestOverride|querystring)|\$input|\$method\.request", access_log)
    for settings in stage["Properties"]["MethodSettings"]:
        assert settings.get("LoggingLevel", "OFF") == "OFF" and not settings.get("DataTraceEnabled"), settings
    (rule,) = _of_type(resources, "AWS::XRay::SamplingRule").values()
    sampling = rule["Properties"]["SamplingRule"]
    assert (sampling["FixedRate"], sampling["ReservoirSize"], sampling["HTTPMethod"]) == (0, 0, "GET")
    assert sampling["URLPath"] == "*/events*" and sampling["ServiceType"] == "AWS::ApiGateway::Stage"
    assert sampling["ServiceName"] == {"Fn::Sub": "${AWS::StackName}-api/${StageName}"}
    assert sampling["Priority"] < 10000  # before the Default rule


def test_browsers_preflights_and_every_answer_follow_the_cors_origins_parameter(cfn, resources):
    """CorsAllowOrigin (none by default) is each HTTP function's CORS_ALLOWED_ORIGINS; every path's
    preflight goes to the api function without the authorizer (chatcore.web.cors answers it for each
    allowed origin: SAM's own preflight answers could name one fixed origin only); API Gateway's own
    answers name the request's Origin when CORS is on, and let a page read X-Run-Id."""
    param = cfn["Parameters"]["CorsAllowOrigin"]
    assert param["Default"] == ""
    assert re.fullmatch(param["AllowedPattern"], "https://app.example,http://localhost:5173")
    assert re.fullmatch(param["AllowedPattern"], "*") and not re.fullmatch(param["AllowedPattern"], "https://a.example/x")
    for name in ("ChatFunction", "EventsFunction", "ApiFunction"):
        env = _function(resources, name)["Environment"]["Variables"]
        assert env["CORS_ALLOWED_ORIGINS"] == {"Ref": "CorsAllowOrigin"}, name
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    body = api["Properties"]["Body"]
    for path, ops in body["paths"].items():
        preflight = ops["options"]["x-amazon-apigateway-integration"]
        assert preflight["type"] == "aws_proxy" and "${ApiFunction.Arn}" in _sub(preflight["uri"]), path
    echo = {"Fn::If": ["CorsOn", "method.request.header.Origin", {"Ref": "AWS::NoValue"}]}
    for kind, response in body["x-amazon-apigateway-gateway-responses"].items():
        params = response["responseParameters"]
        assert params["gatewayresponse.header.Access-Control-Allow-Origin"] == echo, kind
        exposed = params["gatewayresponse.header.Access-Control-Expose-Headers"]["Fn::If"][1]
        assert "X-Run-Id" in exposed and "Retry-After" in exposed, kind
        assert not any("Credentials" in header for header in params), kind
    assert cfn["Conditions"]["CorsOn"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CorsAllowOrigin"}, ""]}]}


def test_the_bucket_is_private_encrypted_and_tls_only(resources):
    (bucket_name, bucket), = _of_type(resources, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms", "aws:kms:dsse")
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "VersioningConfiguration" not in props  # deleted photos must not survive as old versions
    (policy,) = _of_type(resources, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_name}
    tls = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
           if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert len(tls) == 1 and tls[0]["Principal"] == "*" and tls[0]["Action"] == "s3:*"
    assert {json.dumps(r, sort_keys=True) for r in tls[0]["Resource"]} == {
        json.dumps({"Fn::GetAtt": [bucket_name, "Arn"]}, sort_keys=True),
        json.dumps({"Fn::Sub": f"${{{bucket_name}.Arn}}/*"}, sort_keys=True)}
    lifecycle = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert all(r["Status"] == "Enabled" for r in lifecycle.values())
    assert any("AbortIncompleteMultipartUpload" in r for r in lifecycle.values())
    assert any("ExpirationInDays" in r and "TagFilters" in r for r in lifecycle.values())
    assert any("ExpirationInDays" in r and "Prefix" in r for r in lifecycle.values())
    # whatever the scheduled function leaves of an account's export is gone a day later
    exports = [r for r in lifecycle.values() if _sub(r.get("Prefix")) == "${MediaPrefix}exports/"]
    assert len(exports) == 1 and exports[0]["ExpirationInDays"] == 1 and "TagFilters" not in exports[0]


def test_the_chat_function_streams_behind_the_web_adapter(resources):
    chat = _function(resources, "ChatFunction")
    assert chat["Runtime"] == "python3.13" and chat["Handler"] == "run.sh"
    assert _web_adapter(chat["Layers"])
    env = chat["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_PORT"] == "8080"
    assert chat["Timeout"] == 900
    run_sh = (ROOT / "functions/chat/run.sh").read_text()
    assert "AWS_LWA_PORT" in run_sh and "chat_api:app" in run_sh


def test_the_events_function_streams_behind_the_web_adapter_without_agno(resources):
    events = _function(resources, "EventsFunction")
    env = events["Environment"]["Variables"]
    assert events["Handler"] == "run.sh" and events["Timeout"] == 900
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream" and env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert _web_adapter(events["Layers"])
    run_sh = (ROOT / "functions/events/run.sh").read_text()
    assert "AWS_LWA_PORT" in run_sh and "events_app:app" in run_sh


def test_the_api_function_is_buffered_and_no_function_but_chat_carries_agno(resources, cfn):
    api = _function(resources, "ApiFunction")
    assert api["Runtime"] == "python3.13" and api["Handler"] == "run.sh"
    assert api["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "buffered"
    assert _web_adapter(api["Layers"])
    (agents_layer,) = [n for n in _of_type(resources, "AWS::Lambda::LayerVersion") if n.startswith("AgentsLayer")]
    (identity_layer,) = [n for n in _of_type(resources, "AWS::Lambda::LayerVersion") if n.startswith("IdentityLayer")]
    for name, fn in _of_type(resources, "AWS::Lambda::Function").items():
        refs = [layer.get("Ref") for layer in fn["Properties"].get("Layers", []) if isinstance(layer, dict)]
        assert (agents_layer in refs) == (name == "ChatFunction"), name
        assert (identity_layer in refs) == (name == "EventsFunction"), name  # PyJWT where a token is checked
        assert fn["Properties"]["Runtime"] == "python3.13", name
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        env = fn["Properties"]["Environment"]["Variables"]
        assert "POWERTOOLS_SERVICE_NAME" in env and env["POWERTOOLS_METRICS_NAMESPACE"] == "AgentChat", name
        assert "ANTHROPIC_API_KEY" not in env and "DATABASE_URL" not in env, name


def test_every_function_and_layer_is_built_with_bytecode_by_the_makefile():
    source = load_template()
    built = {n: r for n, r in source["Resources"].items()
             if r["Type"] in ("AWS::Serverless::LayerVersion", "AWS::Serverless::Function")}
    assert {n for n, r in built.items() if r["Type"] == "AWS::Serverless::LayerVersion"} == {
        "CoreLayer", "AgentsLayer", "IdentityLayer"}
    makefile = (ROOT / "Makefile").read_text()
    assert "build-%Layer:" in makefile and "build-%Function:" in makefile and "local/lambda_build.py" in makefile
    for name, resource in built.items():
        # SAM's own python3.13 method ships no bytecode: Lambda would compile every module at each cold start
        assert resource["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "."}, name
        assert name.endswith(("Layer", "Function")), name  # the Makefile's targets
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            assert resource["Properties"]["CompatibleRuntimes"] == ["python3.13"], name
            assert resource["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}], name
            assert (ROOT / resource["Properties"]["ContentUri"] / "requirements.txt").exists(), name
    assert (ROOT / "layers/core/chatcore/__init__.py").exists()


def test_every_function_and_layer_is_arm64_by_default_and_x86_64_by_parameter(cfn, resources):
    param = cfn["Parameters"]["Architecture"]
    assert param["Default"] == "arm64" and set(param["AllowedValues"]) == {"arm64", "x86_64"}
    assert cfn["Conditions"]["IsArm64"] == {"Fn::Equals": [{"Ref": "Architecture"}, "arm64"]}
    functions = _of_type(resources, "AWS::Lambda::Function")
    assert len(functions) == 7
    for name, fn in functions.items():
        assert fn["Properties"]["Architectures"] == [{"Ref": "Architecture"}], name
    for name, layer in _of_type(resources, "AWS::Lambda::LayerVersion").items():
        assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}], name
    assert int(cfn["Parameters"]["WebAdapterLayerVersion"]["Default"]) >= 30  # v1.1.0: SnapStart hooks


def test_the_chat_function_runs_with_snapstart_behind_its_alias(resources):
    chat = _function(resources, "ChatFunction")
    assert chat["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    (alias_name,) = [n for n, r in _of_type(resources, "AWS::Lambda::Alias").items()
                     if r["Properties"]["FunctionName"] == {"Ref": "ChatFunction"}]
    alias = resources[alias_name]["Properties"]
    assert alias["Name"] == "live" and "Fn::GetAtt" in alias["FunctionVersion"]
    # API Gateway may invoke the alias (the permission SAM makes names it)
    permissions = [r["Properties"] for r in _of_type(resources, "AWS::Lambda::Permission").values()
                   if r["Properties"]["FunctionName"] == {"Ref": alias_name}]
    assert permissions and all(p["Principal"] == "apigateway.amazonaws.com" for p in permissions)
    env = chat["Environment"]["Variables"]
    from chatcore.web import snapstart

    assert env[snapstart.BEFORE_CHECKPOINT] == "/snapstart/before-checkpoint"
    assert env[snapstart.AFTER_RESTORE] == "/snapstart/after-restore"
    # the adapter refuses hook paths that are the pass-through path (/events by default)
    assert "AWS_LWA_PASS_THROUGH_PATH" not in env and "/events" not in (env[snapstart.BEFORE_CHECKPOINT],
                                                                        env[snapstart.AFTER_RESTORE])
    # 0 = unreserved (the connection budget's test decides what a value gives)
    assert chat["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ChatReserved", {"Ref": "ChatReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}


def test_the_asynchronous_functions_failures_land_in_queues_and_everything_that_matters_is_alarmed(cfn, resources):
    configs = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
               for c in _of_type(resources, "AWS::Lambda::EventInvokeConfig").values()}
    queues = {"ScheduledFunction": "ScheduledRunFailures", "AccountFunction": "AccountJobFailures",
              "MigrateFunction": "MigrateFailures"}
    assert set(configs) == set(queues)
    # CloudFormation invokes the custom resource's unqualified function, asynchronously: never retried
    assert configs["MigrateFunction"]["Qualifier"] == "$LATEST"
    assert resources["DatabaseMigrations"]["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    for function, queue_name in queues.items():
        props = configs[function]
        assert props["MaximumRetryAttempts"] == (0 if function == "MigrateFunction" else 2), function
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_name, "Arn"]}
        queue = resources[queue_name]["Properties"]
        assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 1209600
        # the destination is written with the function's own role
        sends = [s for s in _statements(resources, function) if "sqs:SendMessage" in _actions(s)]
        assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": [queue_name, "Arn"]}], function
        (policy,) = [r["Properties"] for r in _of_type(resources, "AWS::SQS::QueuePolicy").values()
                     if r["Properties"]["Queues"] == [{"Ref": queue_name}]]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in policy["PolicyDocument"]["Statement"]), queue_name
        # an alarm fires as soon as a message is in the queue
        assert any(a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
                   and a["Properties"]["Dimensions"] == [{"Name": "QueueName",
                                                          "Value": {"Fn::GetAtt": [queue_name, "QueueName"]}}]
                   for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()), queue_name
    rules = {r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: r["Properties"]
             for r in _of_type(resources, "AWS::Events::Rule").values()}
    assert set(rules) == {"ScheduledFunction", "AccountFunction"}
    assert rules["ScheduledFunction"]["Targets"][0]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": ["ScheduledRunFailures", "Arn"]}
    # an administrator's AdminDeleteUser in Cognito: undeliverable events kept with the account's jobs
    assert rules["AccountFunction"]["Targets"][0]["DeadLetterConfig"]["Arn"] == {
        "Fn::GetAtt": ["AccountJobFailures", "Arn"]}
    # the spool: a FIFO queue, its dead-letter queue TLS-only and alarmed, its consumer reporting
    # partial batch failures (a session's later turns never go before an earlier one)
    spool = resources["SpoolQueue"]["Properties"]
    assert spool["FifoQueue"] is True and spool["SqsManagedSseEnabled"] is True
    assert spool["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["SpoolDeadLetters", "Arn"]}
    assert resources["SpoolDeadLetters"]["Properties"]["FifoQueue"] is True
    (policy,) = [r["Properties"] for r in _of_type(resources, "AWS::SQS::QueuePolicy").values()
                 if {"Ref": "SpoolQueue"} in r["Properties"]["Queues"]]
    assert policy["Queues"] == [{"Ref": "SpoolQueue"}, {"Ref": "SpoolDeadLetters"}]
    assert policy["PolicyDocument"]["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert any(a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
               and a["Properties"]["Dimensions"] == [{"Name": "QueueName",
                                                      "Value": {"Fn::GetAtt": ["SpoolDeadLetters", "QueueName"]}}]
               for a in _of_type(resources, "AWS::CloudWatch::Alarm").values())
    (mapping,) = _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["SpoolQueue", "Arn"]}
    assert mapping["Properties"]["FunctionName"] == {"Ref": "SpoolFunction"}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    chat_sends = [s["Resource"] for s in _statements(resources, "ChatFunction") if "sqs:SendMessage" in _actions(s)]
    assert chat_sends == [{"Fn::GetAtt": ["SpoolQueue", "Arn"]}]
    assert _function(resources, "ChatFunction")["Environment"]["Variables"]["SPOOL_QUEUE_URL"] == {"Ref": "SpoolQueue"}
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    watched = set()
    for name, alarm in alarms.items():
        p = alarm["Properties"]
        metrics = [(p["Namespace"], p["MetricName"])] if "MetricName" in p else \
            [(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
             for m in p["Metrics"] if "MetricStat" in m]
        watched |= set(metrics)
        actions = p["AlarmActions"]["Fn::If"]
        assert actions[0] == "CreateAlarmTopic" and actions[1] == [{"Ref": "AlarmTopic"}], name
        assert actions[2]["Fn::If"][0] == "HasAlarmTopicArn", name
    assert {("AWS/ApiGateway", "5XXError"), ("AWS/Lambda", "Throttles"), ("AgentChat", "TurnsFailed"),
            ("AWS/Lambda", "Errors"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible")} <= watched
    topic = resources["AlarmTopic"]
    assert topic["Condition"] == "CreateAlarmTopic"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]


def test_least_privilege_s3_and_secrets(resources):
    def s3(function: str) -> dict[str, list]:
        found: dict[str, list] = {}
        for s in _statements(resources, function):
            for a in _actions(s):
                if a.startswith("s3:"):
                    found.setdefault(a, []).append(s["Resource"])
        return found

    objects = {"Fn::Sub": "${MediaBucket.Arn}/${MediaPrefix}*"}
    uploads = {"Fn::Sub": "${MediaBucket.Arn}/${MediaPrefix}pending/uploads/*"}
    photos = {"Fn::Sub": "${MediaBucket.Arn}/${MediaPrefix}????????-????-????-????-????????????-*"}
    chat, api = s3("ChatFunction"), s3("ApiFunction")
    # the chat function reads and writes sessions' photos and reads and deletes uploads' originals:
    # never an export, nothing else under the prefix
    assert chat == {"s3:GetObject": [photos, uploads], "s3:PutObject": [photos],
                    "s3:DeleteObject": [photos, uploads], "s3:ListBucket": [{"Fn::GetAtt": ["MediaBucket", "Arn"]}]}
    assert set(api) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    # the API function signs uploads' POSTs
    assert api.pop("s3:PutObject") == [objects, uploads]
    for action, targets in api.items():
        expected = {"Fn::GetAtt": ["MediaBucket", "Arn"]} if action == "s3:ListBucket" else objects
        assert targets == [expected], action
    for function in ("ChatFunction", "ApiFunction"):
        (listing,) = [s for s in _statements(resources, function) if "s3:ListBucket" in _actions(s)]
        # never IfExists: a list without a prefix (the whole bucket) must not match
        assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${MediaPrefix}*"}}}, function
    assert s3("MigrateFunction") == {} and s3("EventsFunction") == {}
    # the scheduled function deletes (the retention period, resumed account deletions, expired
    # exports) and lists a session's photos; it never reads or writes one
    bucket = {"Fn::GetAtt": ["MediaBucket", "Arn"]}
    assert s3("ScheduledFunction") == {"s3:DeleteObject": [objects], "s3:ListBucket": [bucket]}
    # the account function reads photos (exports), deletes an account's objects, writes only exports
    exports = {"Fn::Sub": "${MediaBucket.Arn}/${MediaPrefix}exports/*"}
    assert s3("AccountFunction") == {"s3:GetObject": [objects], "s3:DeleteObject": [objects],
                                     "s3:PutObject": [exports], "s3:AbortMultipartUpload": [exports],
                                     "s3:ListBucket": [bucket]}
    for function in ("ChatFunction", "ApiFunction", "ScheduledFunction", "AccountFunction"):
        (listing,) = [s for s in _statements(resources, function) if "s3:ListBucket" in _actions(s)]
        # never IfExists: a list without a prefix (the whole bucket) must not match
        assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${MediaPrefix}*"}}}, function
    for function in ("ChatFunction", "ApiFunction", "EventsFunction", "ScheduledFunction", "MigrateFunction",
                     "AccountFunction"):
        for s in _statements(resources, function):
            assert "*" not in json.dumps(_actions(s)), (function, s)
    # only the API function starts the account function's jobs, and it may invoke nothing else
    invokes = {f: [s["Resource"] for s in _statements(resources, f) if "lambda:InvokeFunction" in _actions(s)]
               for f in ("ChatFunction", "ApiFunction", "EventsFunction", "ScheduledFunction", "MigrateFunction",
                         "AccountFunction")}
    assert invokes.pop("ApiFunction") == [{"Fn::GetAtt": ["AccountFunction", "Arn"]}]
    assert not any(invokes.values()), invokes
    assert not [a for f in invokes for s in _statements(resources, f) for a in _actions(s) if a.startswith("lambda:")]
    secret = [s for s in _statements(resources, "ChatFunction") if "secretsmanager:GetSecretValue" in _actions(s)]
    assert len(secret) == 1 and "AnthropicApiKeySecret" in json.dumps(secret[0]["Resource"])
    assert not [s for f in ("ApiFunction", "EventsFunction", "ScheduledFunction", "MigrateFunction", "AccountFunction")
                for s in _statements(resources, f)
                if "secretsmanager:GetSecretValue" in _actions(s)]
    chat_env = _function(resources, "ChatFunction")["Environment"]["Variables"]
    assert "AnthropicApiKeySecret" in json.dumps(chat_env["ANTHROPIC_API_KEY_SECRET_ARN"])


def test_postgres_and_vpc_are_parameters(cfn, resources):
    params = cfn["Parameters"]
    for name in ("DbEndpoint", "DbPort", "DbName", "DbUser", "DbMigrationUser", "DbAuthMode", "DbSecretArn",
                 "DbMigrationSecretArn", "SubnetIds", "SecurityGroupIds", "ExistingUserPoolArn"):
        assert name in params, name
    vpc_policy = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    for name, fn in _of_type(resources, "AWS::Lambda::Function").items():
        assert fn["Properties"]["VpcConfig"]["Fn::If"][0] == "InVpc", name
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["DB_HOST"] == {"Fn::If": ["UseProxy", {"Fn::GetAtt": ["DbProxy", "Endpoint"]}, {"Ref": "DbEndpoint"}]}, name
        assert "DB_IAM_AUTH" in env and "DB_SECRET_ARN" in env, name
        role = resources[fn["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        # the migration user owns the schema; every other function connects as the app user (no DDL)
        expected = "MigrationDatabaseAccessPolicy" if name == "MigrateFunction" else "AppDatabaseAccessPolicy"
        assert {"Ref": expected} in role["ManagedPolicyArns"], name
        assert sum("DatabaseAccessPolicy" in json.dumps(a) for a in role["ManagedPolicyArns"]) == 1, name
        # the VPC policy only when subnets are given
        conditional = [a for a in role["ManagedPolicyArns"] if "AWSLambdaVPCAccessExecutionRole" in json.dumps(a)]
        assert conditional == [{"Fn::If": ["InVpc", {"Fn::Sub": vpc_policy}, {"Ref": "AWS::NoValue"}]}], name
        expected_user = "DbMigrationUser" if name == "MigrateFunction" else "DbUser"
        assert env["DB_USER"] == {"Ref": expected_user}, name
    migrate_env = _function(resources, "MigrateFunction")["Environment"]["Variables"]
    assert migrate_env["DB_APP_USER"] == {"Ref": "DbUser"}
    assert migrate_env["DB_SECRET_ARN"] == {"Fn::If": ["DbSecretAuth", {"Ref": "DbMigrationSecretArn"}, ""]}
    for policy_name, user, secret in (("AppDatabaseAccessPolicy", "DbUser", "DbSecretArn"),
                                      ("MigrationDatabaseAccessPolicy", "DbMigrationUser", "DbMigrationSecretArn")):
        policy = resources[policy_name]["Properties"]["PolicyDocument"]["Statement"][0]["Fn::If"]
        assert policy[0] == "DbIamAuth" and policy[1]["Action"] == "rds-db:connect"
        assert _sub(policy[1]["Resource"]).endswith(f"/${{{user}}}")
        assert policy[1]["Resource"]["Fn::Sub"][1]["ResourceId"]["Fn::If"][2] == {"Ref": "DbResourceId"}
        assert policy[2]["Action"] == "secretsmanager:GetSecretValue" and _sub(policy[2]["Resource"]) == f"${{{secret}}}"


def test_migrations_run_on_deploy_before_the_functions_change(resources):
    custom = resources["DatabaseMigrations"]
    assert custom["Type"] == "Custom::DatabaseMigrations"
    assert custom["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    assert "Ref" in custom["Properties"]["MigrationsVersion"]  # a new version on any code or SQL change
    assert int(custom["Properties"]["ServiceTimeout"]) <= 900
    for name in ("ChatFunction", "ApiFunction", "ScheduledFunction", "EventsFunction", "AccountFunction"):
        assert "DatabaseMigrations" in resources[name].get("DependsOn", []), name
    assert (ROOT / "functions/migrate/migrations").resolve() == (ROOT / "sql/migrations").resolve()


def test_the_rollup_runs_on_an_eventbridge_schedule_with_the_retention_period(cfn, resources):
    (rule,) = [r for r in _of_type(resources, "AWS::Events::Rule").values()
               if "ScheduleExpression" in r["Properties"]]
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["ScheduledFunction", "Arn"]}
    # RetentionDays: off (0) by default, never negative; the scheduled function applies it
    param = cfn["Parameters"]["RetentionDays"]
    assert param["Type"] == "Number" and int(param["Default"]) == 0 and int(param["MinValue"]) == 0
    rollup = _function(resources, "ScheduledFunction")
    env = rollup["Environment"]["Variables"]
    assert env["RETENTION_DAYS"] == {"Ref": "RetentionDays"}
    assert env["MEDIA_BUCKET"] == {"Ref": "MediaBucket"} and env["MEDIA_PREFIX"] == {"Ref": "MediaPrefix"}
    assert rollup["Timeout"] == 300  # the housekeeping's time budget (functions/scheduled/handler.py) fits it
    assert not [n for n, f in _of_type(resources, "AWS::Lambda::Function").items()
                if n != "ScheduledFunction" and "RETENTION_DAYS" in f["Properties"]["Environment"]["Variables"]]


def test_the_account_function_runs_the_api_s_long_jobs_without_agno(resources):
    account = _function(resources, "AccountFunction")
    assert account["Handler"] == "handler.handler" and account["Runtime"] == "python3.13"
    assert account["Timeout"] == 900 and account["EphemeralStorage"]["Size"] >= 4096
    assert not _web_adapter(account["Layers"]) and len(account["Layers"]) == 1  # the core layer alone
    env = account["Environment"]["Variables"]
    assert env["MEDIA_BUCKET"] == {"Ref": "MediaBucket"} and env["MEDIA_PREFIX"] == {"Ref": "MediaPrefix"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "account"
    # the API hands its jobs over by name; nothing triggers the function but that invoke
    api_env = _function(resources, "ApiFunction")["Environment"]["Variables"]
    assert api_env["ACCOUNT_FUNCTION_NAME"] == {"Ref": "AccountFunction"}
    # and Cognito's AdminDeleteUser on the stack's user pool, through EventBridge (CloudTrail's record)
    (permission,) = [r["Properties"] for r in _of_type(resources, "AWS::Lambda::Permission").values()
                     if r["Properties"]["FunctionName"] == {"Ref": "AccountFunction"}]
    assert permission["Principal"] == "events.amazonaws.com"
    rule = resources[permission["SourceArn"]["Fn::GetAtt"][0]]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.cognito-idp"]
    assert rule["EventPattern"]["detail"]["eventName"] == ["AdminDeleteUser"]
    assert rule["EventPattern"]["detail"]["requestParameters"]["userPoolId"] == [{"Fn::If": [
        "CreateUserPool", {"Ref": "UserPool"}, {"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "ExistingUserPoolArn"}]}]}]}]


def test_layer_requirements_match_the_lock():
    for layer in layers.LAYERS:
        assert (ROOT / layer / "requirements.txt").read_text() == layers.exported(layer), \
            f"{layer}/requirements.txt is stale: run python -m local.layers"


def test_layers_split_agno_from_the_lean_functions():
    def names(layer: str) -> dict[str, str]:
        text = (ROOT / layer / "requirements.txt").read_text()
        return dict(m.groups() for m in re.finditer(r"^([a-z0-9_.-]+)==([^\s;\\]+)", text, re.M))

    core, agents, identity = names("layers/core"), names("layers/agents"), names("layers/identity")
    assert "agno" not in core and "anthropic" not in core
    # PyJWT and cryptography (~15 MB) for the events function only, which checks bearer tokens itself
    assert {"pyjwt", "cryptography"} <= set(identity) and not {"pyjwt", "cryptography"} & (set(core) | set(agents))
    assert not set(identity) & set(core)
    assert {"agno", "anthropic", "filetype"} <= set(agents)
    lean = {"psycopg", "psycopg-pool", "aws-lambda-powertools", "aws-xray-sdk", "fastapi", "uvicorn", "boto3"}
    assert lean <= set(core)
    # both layers go into the chat function: nothing ships twice, and no CLI-only package ships at all
    assert not set(core) & set(agents)
    assert not {"agnoctl", "typer", "questionary", "prompt-toolkit", "wcwidth", "shellingham"} & (set(core) | set(agents))
    shipped = set(core) | set(agents) | set(identity)
    for dep in layers.direct_dependencies():
        assert dep in shipped or dep in layers.LOCAL_ONLY, f"{dep} is in no layer: add it to one in local/layers.py"


def test_the_approval_ttl_is_a_parameter_of_the_functions_that_need_it(cfn, resources):
    """APPROVAL_TTL (a pause's life) is the ApprovalTtl parameter, set on the chat function (a decision
    past it is refused), the API function (GET /sessions/{id} shows the pause until then) and the
    scheduled function (it expires older pauses); the events function needs none."""
    param = cfn["Parameters"]["ApprovalTtl"]
    assert (param["Type"], param["Default"], param["MinValue"], param["MaxValue"]) == ("Number", 86400, 60, 2592000)
    from chatcore.config import Settings

    declared = Settings.__dataclass_fields__["approval_ttl"]
    assert declared.default == param["Default"] and declared.metadata["setting"]["ge"] == param["MinValue"]
    assert declared.metadata["setting"]["le"] == param["MaxValue"]
    for name in ("ChatFunction", "ApiFunction", "ScheduledFunction"):
        assert _function(resources, name)["Environment"]["Variables"]["APPROVAL_TTL"] == {"Ref": "ApprovalTtl"}, name
    assert "APPROVAL_TTL" not in _function(resources, "EventsFunction")["Environment"]["Variables"]


PUSH_PARAMETERS = {"PushApnsApplicationArn": ("PushApns", "APNS"),
                   "PushApnsSandboxApplicationArn": ("PushApnsSandbox", "APNS_SANDBOX"),
                   "PushFcmApplicationArn": ("PushFcm", "GCM")}


def test_push_notifications_are_optional_parameters_with_sns_scoped_to_their_applications_and_an_alarm(cfn, resources):
    """The SNS platform applications are optional parameters (empty: devices stored, nothing sent), given
    to the functions; IAM lets the chat function publish, and the API and account functions manage
    endpoints, only within those applications; the failures' metric is alarmed."""
    import re

    for name, (condition, platform) in PUSH_PARAMETERS.items():
        param = cfn["Parameters"][name]
        assert param["Default"] == "" and re.fullmatch(param["AllowedPattern"], "")
        assert re.fullmatch(param["AllowedPattern"], f"arn:aws:sns:af-south-1:123456789012:app/{platform}/chat")
        assert not re.fullmatch(param["AllowedPattern"], "arn:aws:sns:af-south-1:123456789012:app/ADM/chat")
        assert cfn["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]}
        variable = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper().replace("_ARN", "_ARN")
        for function in ("ChatFunction", "ApiFunction", "AccountFunction"):
            assert _function(resources, function)["Environment"]["Variables"][variable] == {"Ref": name}, function

    def sns(function: str) -> dict[str, list]:
        found: dict[str, list] = {}
        for s in _statements(resources, function):
            for a in _actions(s):
                if a.startswith("sns:"):
                    found.setdefault(a, []).extend(s["Resource"])
        return found

    def targets(resources_: list) -> set[str]:
        """Each resource's application parameter and whether it is the application or its endpoints."""
        out = set()
        for r in resources_:
            condition, value, _ = r["Fn::If"]
            assert condition in {c for c, _ in PUSH_PARAMETERS.values()}
            text = json.dumps(value)
            (param,) = [p for p in PUSH_PARAMETERS if f'"{p}"' in text]
            out.add((param, "endpoints" if ":endpoint/" in text and text.endswith('"/*"]]}') else "application"))
        return out

    apps = {(p, "application") for p in PUSH_PARAMETERS}
    endpoints = {(p, "endpoints") for p in PUSH_PARAMETERS}
    chat, api, account = sns("ChatFunction"), sns("ApiFunction"), sns("AccountFunction")
    assert set(chat) == {"sns:CreatePlatformEndpoint", "sns:Publish", "sns:GetEndpointAttributes",
                         "sns:SetEndpointAttributes", "sns:DeleteEndpoint"}
    assert targets(chat.pop("sns:CreatePlatformEndpoint")) == apps
    assert all(targets(r) == endpoints for r in chat.values())
    assert "sns:Publish" not in api and targets(api.pop("sns:CreatePlatformEndpoint")) == apps
    assert all(targets(r) == endpoints for r in api.values())
    assert set(account) == {"sns:DeleteEndpoint"} and targets(account["sns:DeleteEndpoint"]) == endpoints
    for function in ("EventsFunction", "ScheduledFunction", "MigrateFunction"):
        assert sns(function) == {}, function
    for function in ("ChatFunction", "ApiFunction", "AccountFunction"):
        role = resources[f"{function}Role"]["Properties"]
        assert [p["Fn::If"][0] for p in role["Policies"] if "Fn::If" in p] == ["PushOn"], function
    alarm = resources["PushFailuresAlarm"]
    assert alarm["Condition"] == "PushOn"
    assert (alarm["Properties"]["Namespace"], alarm["Properties"]["MetricName"]) == ("AgentChat", "PushFailures")
    assert alarm["Properties"]["Dimensions"] == [{"Name": "service", "Value": "chat"}]
