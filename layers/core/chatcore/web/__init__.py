"""The HTTP functions' plumbing: the Starlette app (``app``), the FastAPI factory of the API
function (``fastapi_app``), one router per resource (``routes``), the caller's identity, page
cursors and the OpenAPI document's parts. What goes over the wire is ``chatcore.wire``. No agno
import."""
