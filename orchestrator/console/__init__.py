"""The staff console and the payer's receipt lookup: an aiohttp application served by
`windowpay serve` beside the gRPC front door, reading the PostgreSQL record."""
