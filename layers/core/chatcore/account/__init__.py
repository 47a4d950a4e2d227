"""Users' data as a whole: deleting a session or an account (``deletion``), exporting an account
(``export``), the retention period (``retention``) and the account function's jobs (``jobs``).

Never imports agno: the API, account and scheduled functions use it.
"""
