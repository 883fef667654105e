"""The system of record in PostgreSQL: every order, line, attempt, refund, journal
entry, payment event and receipt, copied from Redis by the drainer. Redis keeps what is
live; history, settlement and statistics are read here."""
