"""One package per payment channel (adapter, decline allow-lists, bill parser, sandbox
gateway, auth-code rule), found through registry.py."""
