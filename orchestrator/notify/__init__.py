"""The HTTP listener for the providers' signed notifications."""
