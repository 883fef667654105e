"""The gRPC front door: stateless servicers, routing and batching to the actors."""
