"""Pure domain: money, fee catalog, order and attempt lifecycle. No I/O here."""
