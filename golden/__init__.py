"""golden package."""
