-- 0009 uploads: big photos go straight to S3 (POST /uploads hands out a presigned POST for a key
-- under <MEDIA_PREFIX>pending/uploads/), and a turn names them by id. This row is what binds an
-- upload to its user (the key does not), when it can no longer be used, and which turn used it:
-- an upload is used once, then its original is deleted (the normalised copy is the turn's photo).
CREATE TABLE uploads (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key              text NOT NULL,             -- the original's S3 key (chatcore.media.keys.upload_key)
    mime_type        text NOT NULL,             -- as declared; the presigned POST requires it as Content-Type
    size             bigint NOT NULL CHECK (size > 0),  -- as declared; S3 enforces the limit, not this
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,      -- created_at + UPLOAD_TTL_SECONDS: 410 upload-expired after
    consumed_at      timestamptz,               -- set when a turn used it: 409 upload-used after
    -- the turn that used it (a retried turn is answered with that run); no foreign key: the run goes
    -- with its session, and the upload must still say it was used
    consumed_run_id  uuid
);
CREATE INDEX uploads_user ON uploads (user_id, id);
