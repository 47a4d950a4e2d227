#!/bin/bash
# Lambda entry point under the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap):
# the adapter forwards each invocation to this uvicorn server and streams its response.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-$(dirname "$0")}:${PYTHONPATH}"
exec python -m uvicorn --app-dir "${LAMBDA_TASK_ROOT:-$(dirname "$0")}" events_app:app \
    --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}" --no-access-log --timeout-keep-alive 75
