"""Conformance: each channel checked against material from outside windowpay (issue 20)."""
