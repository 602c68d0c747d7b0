"""MLOps platform logic."""
