"""Every SQL statement of the application, one module per aggregate; parameters always bound.

``sessions`` (users, sessions, messages), ``turns`` (a turn's first statement, runs and their
messages), ``catalog`` (agents, teams, prices), ``usage`` (the one definition of a user's usage,
budgets, the rollup, the report), ``rates`` (exchange rates), ``backfills`` (re-pricing),
``memories`` (what the assistant remembers of a user, and a session's recall of it).
This package imports only ``db``, ``config`` and ``errors`` of chatcore.
"""
