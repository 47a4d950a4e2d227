"""Shared code of the agent chat backend: storage, media, pricing, agents, turns."""
