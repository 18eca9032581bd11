"""Versioned outbox schemas: MIGRATIONS[n - 1] holds the statements that make version n."""
