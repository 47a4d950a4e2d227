"""The wire format: what the API sends and accepts, with no HTTP in it. The request and response
bodies (``schemas``), server-sent events' framing and the documentation of a turn's events
(``sse``), a stored message as the app and the export see it (``messages``), and how an amount is
written (``amounts``).

Below ``turns`` and ``account``, which write what goes over the wire, and ``web``, which serves it.
Never imports agno.
"""
