"""Who may call the front door: certificates (pki), principals and roles, the
authorization table (policy), supervisor PINs, limits, and the client side."""
