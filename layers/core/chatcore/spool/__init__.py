"""The durable spool of finished turns: a turn that finished while the database stayed unreachable
through its retries (``chatcore.turns.finish``) is not kept in the sandbox's memory alone but spooled,
as the exact rows it would have written (every id fixed), to an SQS FIFO queue (``queue``: one message
group per session, the run's id as its deduplication id), and written once the database is back
(``consumer``: the spool function in AWS, a thread of ``bin/serve`` locally), in order per session and
never twice (``records.store_record``: a second write of a turn is a duplicate key that changes
nothing). A new turn of the session on any instance does not wait for that: it writes the spooled turn
itself from its record (``chatcore.turns.begin``).
"""
