"""UnionPay ACP 5.1.0 conformance: public wire samples and a test-only ACP counterpart."""
