"""Code generated from protos/ by `python -m orchestrator.protogen`; never edited by hand."""
