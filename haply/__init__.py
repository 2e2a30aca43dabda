"""haply: a high-availability load balancer that reads the files operators already have."""

__version__ = "0.1.0"
