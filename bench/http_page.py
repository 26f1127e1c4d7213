"""The HTTP interface's cost: page size, /metrics and /api/status scrape times, agent memory.

    sudo python bench/http_page.py [--scrapes 200]

Needs root (a lab: two nodes and a client in network namespaces). Runs the lab cluster twice,
without [http] and with it, and prints the agents' resident memory (VmRSS, locked memory
makes all of it resident) in both cases; then, with the interface on, the size of the page's
files and the time the client's scrapes of /metrics and /api/status take over the LAN
(p50 / p95 / max, one HTTP/1.1 connection per scrape as Prometheus's first scrape makes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from hotstandby.lab import CLIENT, Lab, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster

PORT = 8080

# Runs in the client's namespace: times `n` GETs of each path, prints JSON.
_SCRAPER = """
import http.client, json, sys, time
host, n, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
out = {}
for path in paths:
    times, size = [], 0
    for _ in range(n):
        began = time.perf_counter()
        c = http.client.HTTPConnection(host, PORT, timeout=5)
        c.request("GET", path)
        body = c.getresponse().read()
        times.append(time.perf_counter() - began)
        size = len(body)
        c.close()
    out[path] = {"times": times, "size": size}
print(json.dumps(out))
""".replace("PORT", str(PORT))


def rss_kib(pid: int) -> int:
    """A process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def agents_rss(lab: Lab, http: bool) -> dict[str, float]:
    """Each agent's RSS in MiB once settled, with or without the HTTP interface."""
    # A cluster of its own per run (fresh state, its own floating address): the agents of
    # the run before were killed and left theirs behind, as after a power cut.
    name, address = ("on", "192.0.2.21/24") if http else ("off", "192.0.2.20/24")
    spec = ClusterSpec(name=name, extra=_http(lab) if http else "", ip_params={"address": address})
    cluster = LabCluster(lab, spec)
    cluster.write()
    cluster.start_all()
    try:
        cluster.wait_active(30)
        time.sleep(3.0)  # let both settle into their steady state
        return {n: rss_kib(p.pid) / 1024 for n, p in cluster.agents.items()}
    finally:
        for proc in cluster.agents.values():
            lab.kill(proc)


def main() -> int:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"http_page: {reason}", file=sys.stderr)
        return 2
    with Lab("hwbb", nodes=("alpha", "beta")) as lab:
        off = agents_rss(lab, http=False)
        on_rss = agents_rss(lab, http=True)
        spec = ClusterSpec(name="scrape", extra=_http(lab), ip_params={"address": "192.0.2.22/24"})
        cluster = LabCluster(lab, spec)
        cluster.write()
        cluster.start_all()
        active = cluster.wait_active(30)
        time.sleep(2.0)
        host = lab.node(active).lan_ipv4
        paths = ["/", "/app.js", "/style.css", "/metrics", "/api/status"]
        done = lab.run(
            CLIENT,
            [sys.executable, "-c", _SCRAPER, host, str(args.scrapes), *paths],
            timeout=600,
        )
        result = json.loads(done.stdout)
    print("agent RSS (MiB), per node:")
    for node in off:
        print(f"  {node}: without [http] {off[node]:.1f}, with it {on_rss[node]:.1f}")
    page = sum(result[p]["size"] for p in ("/", "/app.js", "/style.css"))
    sizes = ", ".join(f"{p} {result[p]['size']} B" for p in ("/", "/app.js", "/style.css"))
    print(f"page: {page} bytes uncompressed ({sizes})")
    for path in ("/metrics", "/api/status"):
        times = sorted(t * 1000 for t in result[path]["times"])
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"{path}: {result[path]['size']} B; over {len(times)} scrapes p50 "
            f"{statistics.median(times):.2f} ms, p95 {p95:.2f} ms, max {times[-1]:.2f} ms"
        )
    return 0


def _http(lab: Lab) -> str:
    listen = ", ".join(f'{n} = "{lab.node(n).lan_ipv4}:{PORT}"' for n in lab.node_names)
    return f"[http]\nlisten = {{ {listen} }}\n"


if __name__ == "__main__":
    sys.exit(main())
