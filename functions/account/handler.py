"""The account function: the jobs of users' data that can outlast an API request.

The API function hands a job over as an asynchronous invoke (``chatcore.account.jobs.start``) with
the event ``{"job": "deletion", "id": "<account_deletions.id>"}`` (DELETE /me: every session,
photo, upload and export of the account, then the user) or ``{"job": "export", "id":
"<exports.id>"}`` (POST /me/export: the zip of everything stored about the user). An administrator's
``AdminDeleteUser`` in Cognito arrives from EventBridge (CloudTrail's record of the call) and deletes
the account as DELETE /me does (``jobs.delete_deleted_user``). A job for an id
that no longer exists (a deletion already finished, an export already pruned) does nothing.

Every job is idempotent. A job that fails raises, so Lambda retries it (twice); then the event and
the error land in the failures queue (alarmed), and the scheduled function resumes a deletion no
pass has worked on for 15 minutes. A deletion still waiting for its account's turns to stop at the
end of its time raises too, so the retry goes on with it. A malformed event is an error at once.

The database is named as for every function (``DATABASE_URL``, ``DB_SECRET_ARN`` or
``DB_IAM_AUTH``; see chatcore.db). Imports psycopg, boto3 (S3) and chatcore, never agno.
"""

from __future__ import annotations

from typing import Any

from chatcore import db
from chatcore.account import jobs
from chatcore.config import get_settings
from chatcore.observability import logger

# A bad setting fails the cold start, naming the variable, instead of every job.
get_settings()


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    if jobs.is_cognito_deletion(event):  # an administrator deleted the user in Cognito (EventBridge)
        summary = db.once_more_if_connection_lost(lambda: jobs.delete_deleted_user(event),
                                                  what="the deletion of a user deleted in Cognito")
        logger.info("account deleted in Cognito", extra=summary)
        return summary
    kind, job_id = jobs.parse(event or {})  # ValueError naming what the event lacks
    # a connection lost mid-job (a database restart, a failover): the pool replaces it and the job,
    # idempotent, starts over once; a second loss is the invoke's failure
    summary = db.once_more_if_connection_lost(lambda: jobs.run(kind, job_id), what=f"the {kind} job {job_id}")
    logger.info("account job done", extra=summary)
    if kind == "deletion" and not summary.get("done"):
        raise RuntimeError(f"the deletion {job_id} is not finished: {len(summary.get('waiting_for') or [])} "
                           "turn(s) still stopping; Lambda retries it (and the scheduled function resumes it)")
    return summary
