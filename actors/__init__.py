"""Ray actor classes and the one module (runtime.py) that calls Ray."""
