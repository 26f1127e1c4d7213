"""The demo: the example cluster, a fault, the takeover."""
