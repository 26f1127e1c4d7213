"""A monitor for the lab's TCP echo service: exit 0 when it echoes, 7 when refused, 1 else.

python echo_check.py HOST PORT
"""

from __future__ import annotations

import socket
import sys


def main() -> int:
    """Connect, send one byte, expect it back."""
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        with socket.create_connection((host, port), timeout=1.0) as conn:
            conn.sendall(b"x")
            return 0 if conn.recv(1) == b"x" else 1
    except ConnectionRefusedError:
        return 7
    except OSError as err:
        print(f"echo check: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
