"""Photos: validation (``images``), the one S3 key rule (``keys``), S3 access without agno (``s3``),
and the bridge to agno's media storage (``agno_storage``, the only module here that imports agno)."""
