-- 0015 push: the user's phones (POST /me/devices) and the notifications sent to them through Amazon
-- SNS mobile push (chatcore.notify).
--
-- A device is one app install: its platform (apns, apns_sandbox, fcm) and its token, which is unique
-- per platform: the same token registered again is the same device, and a token registered by
-- another user (the phone changed hands, or signed in as someone else) moves to that user. Its SNS
-- platform endpoint is created when it is registered (or at its first push when SNS was unreachable
-- then); a device whose endpoint the platform disabled (app uninstalled, token expired) is deleted
-- by the push that finds it disabled.
CREATE TABLE devices (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    platform     text NOT NULL CHECK (platform IN ('apns', 'apns_sandbox', 'fcm')),
    token        text NOT NULL CHECK (length(token) BETWEEN 1 AND 4096),
    app_version  text CHECK (length(app_version) <= 64),
    locale       text CHECK (length(locale) <= 35),
    endpoint_arn text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT devices_one_per_token UNIQUE (platform, token)
);
CREATE INDEX devices_user ON devices (user_id, id);

-- The lock screen shows a preview of the answer (its first ~100 characters) only when the user
-- opted in (PUT /me/settings {"push_preview": true}); by default a generic text.
ALTER TABLE users ADD COLUMN push_preview boolean NOT NULL DEFAULT false;

-- Each notification is claimed here before it is sent, by one INSERT: a retry, a second instance or
-- a second decision never sends it twice. `key`: the run (turn_finished), the run and the id of its
-- TurnPaused event (approval_needed: a run may pause more than once), the month and the threshold
-- (budget: "2026-12:80", "2026-12:100").
CREATE TABLE pushes (
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('turn_finished', 'approval_needed', 'budget')),
    key        text NOT NULL,
    devices    integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind, key)
);
CREATE INDEX pushes_created ON pushes (created_at);

-- When a client read the turn's final event through the events route (a follower): the chat
-- function then sends no turn_finished push for it.
ALTER TABLE runs ADD COLUMN final_delivered_at timestamptz;
