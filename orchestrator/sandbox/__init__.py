"""Sandbox providers: the same behaviour as the real gateways, on loopback, with a ledger."""
