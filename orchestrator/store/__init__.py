"""Redis: current order state, per-order journal, idempotency and single-use claims."""
