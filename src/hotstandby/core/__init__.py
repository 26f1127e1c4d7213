"""The pure core: decisions and their reasons, no I/O, no clock, no randomness of its own.

Nothing under this package may import the shell (agent, adapters, lab, cli), asyncio,
sockets, subprocess, time or the global random module; tests/test_core_imports.py checks it.
"""
