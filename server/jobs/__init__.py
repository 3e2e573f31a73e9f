"""Ingestion jobs on procrastinate: the queue, the tasks, enqueueing, the worker."""
