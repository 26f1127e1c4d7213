"""hotstandby: a hot-standby failover manager for Linux."""

__version__ = "0.1.0"
