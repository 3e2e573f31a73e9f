"""Operating kb: Prometheus metrics, structured logs and the request id that ties a log
line to its audit row.

Nothing here imports the rest of ``server`` except the database models (the scrape-time
statistics), so every layer (policies, services, doors) may call in with one line.
"""
