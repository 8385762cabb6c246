"""Data plane: the Celery app, the tasks that do work, LLM providers, tools, and the run ledger."""
