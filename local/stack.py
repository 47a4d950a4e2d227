"""The local stack: Postgres, S3 (moto server) and the model, started for the demo, the local
server and the tests. Each piece honours what the environment already provides:

- ``DATABASE_URL``: use that database; otherwise start a throwaway cluster (with
  ``LOCAL_PGBOUNCER=1``, behind PgBouncer in transaction pooling mode, as RDS Proxy would be).
- ``AWS_ENDPOINT_URL_S3``: use that S3; otherwise start a moto server, whose SNS then has a
  platform application per push platform (``PUSH_*_APPLICATION_ARN``, ``AWS_ENDPOINT_URL_SNS``) and
  the spool's SQS queue (``SPOOL_QUEUE_URL``, ``AWS_ENDPOINT_URL_SQS``; or those of the environment).
- ``ANTHROPIC_API_KEY``: real Claude (or ``ANTHROPIC_BASE_URL`` if also set); otherwise
  ``ANTHROPIC_BASE_URL`` if set; otherwise the local stand-in server, announced as such.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from local.postgres import LocalPostgres
from local.ports import free_port


# The SNS platform applications of the local stack: (variable, SNS platform, name).
PUSH_APPLICATIONS = (("PUSH_APNS_APPLICATION_ARN", "APNS", "chat-local-apns"),
                     ("PUSH_APNS_SANDBOX_APPLICATION_ARN", "APNS_SANDBOX", "chat-local-apns-sandbox"),
                     ("PUSH_FCM_APPLICATION_ARN", "GCM", "chat-local-fcm"))


@dataclass
class Stack:
    env: dict[str, str] = field(default_factory=dict)
    postgres: LocalPostgres | None = None
    moto: Any = None
    standin: Any = None
    model_description: str = ""

    def apply(self) -> "Stack":
        """Put the stack's settings into this process's environment."""
        os.environ.update(self.env)
        return self

    def stop(self) -> None:
        """Stop what this stack started (the stand-in, moto, the throwaway Postgres and its temp dir),
        each one even when stopping another failed."""
        errors = []
        for name in ("standin", "moto", "postgres"):
            piece = getattr(self, name)
            if piece is None:
                continue
            try:
                piece.stop()
            except Exception as e:  # noqa: BLE001 - the others are still stopped; reported below
                errors.append(f"{name}: {e.__class__.__name__}: {e}")
        if errors:
            raise RuntimeError("the local stack did not stop cleanly: " + "; ".join(errors))


def create_spool_queue(env: dict[str, str], name: str) -> str:
    """A spool queue as the template makes it (FIFO, a dead-letter queue after 20 receives) in the SQS of
    ``env`` (``AWS_ENDPOINT_URL_SQS``); its URL."""
    import json

    import boto3

    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL_SQS"], region_name=env["AWS_REGION"],
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    dlq = sqs.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(QueueName=f"{name}.fifo", Attributes={
        "FifoQueue": "true", "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 20})})["QueueUrl"]


def start_stack(*, database_name: str = "chat", bucket: str = "chat-media-local", quiet: bool = False,
                force_standin: bool = False) -> Stack:
    """Start (or reuse from the environment) Postgres, S3 and the model; apply migrations."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    stack = Stack()
    env = stack.env
    try:
        # Postgres
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            say("postgres: using DATABASE_URL")
        else:
            # held before it starts: a failure or a stop signal halfway through still removes it
            stack.postgres = LocalPostgres()
            stack.postgres.start()
            if os.environ.get("LOCAL_PGBOUNCER", "").lower() in ("1", "true", "yes"):
                stack.postgres.start_bouncer()
                say(f"postgres: PgBouncer (transaction pooling) on port {stack.postgres.bouncer.port}, "
                    "in front of the throwaway cluster")
            env["DATABASE_URL"] = stack.postgres.create_database(database_name)
            say(f"postgres: started a throwaway cluster on port {stack.postgres.port}")
        from chatcore.migrate import apply, default_dir
        import psycopg

        with psycopg.connect(env["DATABASE_URL"], autocommit=True, prepare_threshold=None) as conn:
            applied = apply(conn, default_dir())
        say(f"postgres: {len(applied)} migration(s) applied")

        # S3
        env.setdefault("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "testing"))
        env.setdefault("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = os.environ.get("AWS_REGION", "us-east-1")
        env["MEDIA_BUCKET"] = os.environ.get("MEDIA_BUCKET", bucket)
        if os.environ.get("AWS_ENDPOINT_URL_S3"):
            env["AWS_ENDPOINT_URL_S3"] = os.environ["AWS_ENDPOINT_URL_S3"]
            say("s3: using AWS_ENDPOINT_URL_S3")
        else:
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines

            port = free_port()
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            moto.start()  # a thread of this process: nothing of it outlives the process
            stack.moto = moto  # held once started (its stop would wait forever for a thread never started)
            env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{port}"
            say(f"s3: started a moto server on port {port}")
        import boto3

        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        try:
            s3.create_bucket(Bucket=env["MEDIA_BUCKET"])
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        s3.put_public_access_block(Bucket=env["MEDIA_BUCKET"], PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})

        # SNS mobile push: moto's SNS (the same server) with a platform application per platform, unless
        # the environment names its own (PUSH_*_APPLICATION_ARN, AWS_ENDPOINT_URL_SNS)
        if stack.moto is not None or os.environ.get("AWS_ENDPOINT_URL_SNS"):
            env["AWS_ENDPOINT_URL_SNS"] = os.environ.get("AWS_ENDPOINT_URL_SNS") or env["AWS_ENDPOINT_URL_S3"]
            sns = boto3.client("sns", endpoint_url=env["AWS_ENDPOINT_URL_SNS"], region_name=env["AWS_REGION"],
                               aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
            for variable, platform, name in PUSH_APPLICATIONS:
                if os.environ.get(variable):
                    env[variable] = os.environ[variable]
                    continue
                env[variable] = sns.create_platform_application(
                    Name=name, Platform=platform, Attributes={"PlatformCredential": "local"})["PlatformApplicationArn"]
            say(f"push: SNS at {env['AWS_ENDPOINT_URL_SNS']} (moto: pushes are recorded, not delivered)")

        # The spool of finished turns the database could not take (chatcore.spool): an SQS FIFO queue
        # with its dead-letter queue, in moto (the same server) unless the environment names its own
        if os.environ.get("SPOOL_QUEUE_URL"):
            env["SPOOL_QUEUE_URL"] = os.environ["SPOOL_QUEUE_URL"]
            for variable in ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"):
                if os.environ.get(variable):
                    env[variable] = os.environ[variable]
            say("spool: using SPOOL_QUEUE_URL")
        elif stack.moto is not None or os.environ.get("AWS_ENDPOINT_URL_SQS"):
            env["AWS_ENDPOINT_URL_SQS"] = os.environ.get("AWS_ENDPOINT_URL_SQS") or env["AWS_ENDPOINT_URL_S3"]
            env["SPOOL_QUEUE_URL"] = create_spool_queue(env, "chat-spool-local")
            say(f"spool: SQS queue {env['SPOOL_QUEUE_URL']} (moto)")

        # Model
        if os.environ.get("ANTHROPIC_API_KEY") and not force_standin:
            env["ANTHROPIC_API_KEY"] = os.environ["ANTHROPIC_API_KEY"]
            if os.environ.get("ANTHROPIC_BASE_URL"):
                env["ANTHROPIC_BASE_URL"] = os.environ["ANTHROPIC_BASE_URL"]
            stack.model_description = f"real Claude via {os.environ.get('ANTHROPIC_BASE_URL') or 'api.anthropic.com'}"
        elif os.environ.get("ANTHROPIC_BASE_URL") and not force_standin:
            env["ANTHROPIC_BASE_URL"] = os.environ["ANTHROPIC_BASE_URL"]
            stack.model_description = f"the Anthropic-compatible server at {env['ANTHROPIC_BASE_URL']}"
        else:
            from local.anthropic_standin import StandinServer

            stack.standin = StandinServer()
            stack.standin.start()
            env["ANTHROPIC_BASE_URL"] = stack.standin.url
            env["ANTHROPIC_API_KEY"] = ""
            stack.model_description = (
                f"the LOCAL STAND-IN model server at {stack.standin.url} (not the real Claude: "
                "set ANTHROPIC_API_KEY to use Claude)"
            )
        say(f"model: {stack.model_description}")
        env["ALLOW_UNSIGNED_JWT"] = "1"
        return stack
    except BaseException:
        stack.stop()
        raise
