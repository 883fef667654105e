"""The daily back-office jobs: reconciliation with each provider's bill, and the
end-of-day settlement per window (日结)."""
