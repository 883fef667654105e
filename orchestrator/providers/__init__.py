"""The PaymentProvider port, its adapters, and the polling / reversal engine."""
