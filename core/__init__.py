"""Infrastructure every feature package shares: database, Redis, jobs, logs, metrics, errors."""
