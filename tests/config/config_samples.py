"""A valid configuration to break in tests, and helpers to edit it and find its lines."""

from __future__ import annotations

BASE = """\
[cluster]
name = "db"
secret_file = "/etc/hotstandby/secret"

[[node]]
name = "alpha"
priority = 200
address = "192.0.2.11"

[[node]]
name = "beta"

[[link]]
name = "private"
kind = "udp"
port = 694
[link.endpoints]
alpha = "198.51.100.1"
beta = "198.51.100.2"

[[link]]
name = "null-modem"
kind = "serial"
baud = 9600
[link.endpoints]
alpha = "/dev/ttyS0"
beta = "/dev/ttyS1"

[[resource]]
name = "vip"
kind = "ip"
start_timeout = "5s"
[resource.params]
addresses = ["192.0.2.10/24", "2001:db8::10/64"]
extra = { nested = { deep = [1, 2] } }

[[resource]]
name = "postgres"
kind = "postgres"
start_timeout = "1m"
stop_timeout = "1.5s"
monitor_timeout = "500ms"
monitor_interval = "2s"

[arbitration]
mode = "disk"
device = "/dev/sdc"
watchdog_timeout = "5s"

[timers]
interval = "200ms"
warn_time = "600ms"
dead_time = "1s"
initial_dead = "30s"
lease = "20s"
fence_timeout = "10s"
release = "2s"
max_drift = 0.001

[policies]
failback = true
failback_delay = "5m"
max_restarts = 3
restart_window = "10m"
failure_expiry = "1h"
boot_alone = false

[[alarm]]
kind = "syslog"
"""


def edit(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced by `new` (fails loudly otherwise)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def checkable() -> str:
    """BASE with resource parameters that `check` accepts (the loader's sample has free-form
    ip parameters, and postgres ones that do not fit its short stop and monitor timeouts)."""
    text = edit(BASE, "extra = { nested = { deep = [1, 2] } }", 'interface = "eth0"')
    return edit(
        text,
        'monitor_timeout = "500ms"\nmonitor_interval = "2s"\n',
        'monitor_timeout = "500ms"\nmonitor_interval = "2s"\n[resource.params]\n'
        'pgdata = "/srv/pg"\nstop_modes = ["fast", "immediate"]\nfast_timeout = "500ms"\n'
        'immediate_timeout = "500ms"\nconnect_timeout = "200ms"\nquery_timeout = "200ms"\n',
    )


def line_with(text: str, snippet: str, occurrence: int = 1) -> int:
    """The 1-based line holding the `occurrence`-th line containing `snippet`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if snippet in line]
    return hits[occurrence - 1]


# The [arbitration] table of BASE, to swap for another mode's.
DISK_ARBITRATION = """[arbitration]
mode = "disk"
device = "/dev/sdc"
watchdog_timeout = "5s"
"""


def with_arbitration(table: str, text: str = BASE) -> str:
    """BASE with its [arbitration] table replaced by `table`."""
    return edit(text, DISK_ARBITRATION, table)
