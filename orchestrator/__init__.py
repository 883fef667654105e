"""windowpay: payment orchestration for government service windows."""
