"""What the assistant remembers about a user across sessions: what a memory may hold and how the
memories are recalled (``facts``), and every change to them, by the model's tools or by the user
(``changes``). No agno import: the tools and the consolidation's model call are the turn's
(``chatcore.turns.memory``); the SQL lives in ``chatcore.store.memories``."""
