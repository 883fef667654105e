"""Load scenarios (Locust) and the benchmark."""
