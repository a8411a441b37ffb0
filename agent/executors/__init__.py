"""Executors: what an agent runs an attempt with."""
