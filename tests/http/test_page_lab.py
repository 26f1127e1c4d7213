"""The status page in headless Chromium against two real agents in the lab (fenced cluster).

The browser runs in the client's namespace and reaches each node's page over the LAN.
It loads the active node's page, then the standby's, and stays on it while the active
node loses power: the page must show the standby taking over by itself, no reload.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotstandby.lab import CLIENT, Lab, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.netns import ns_argv

from .browser import Browser, chromium_missing

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PREFIX = "hwb"
PORT = 8080
#: Set to a path to keep the screenshot taken after the takeover (docs/status-page.png).
SCREENSHOT_ENV = "HOTSTANDBY_SCREENSHOT"


def role_of(node: str) -> str:
    """JavaScript: the role the page draws for `node`."""
    return f"document.querySelector('[data-node={json.dumps(node)}]')?.dataset.role"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (alpha, beta) with a client, as root with chromium; else skipped."""
    reason = skip_reason() or chromium_missing()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as built:
        yield built


@pytest.fixture
def cluster(lab: Lab) -> LabCluster:
    """The fenced lab cluster with each node's page on its LAN address and an action token."""
    token = lab.workdir / "http-token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"lab-token-" + os.urandom(16).hex().encode() + b"\n")
    os.close(fd)
    listen = ", ".join(f'{n} = "{lab.node(n).lan_ipv4}:{PORT}"' for n in lab.node_names)
    http = f'[http]\nlisten = {{ {listen} }}\ntoken_file = "{token}"\n'
    c = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=http))
    c.write()
    return c


def url(lab: Lab, node: str, path: str = "/") -> str:
    """node's page (or another path) as the client reaches it."""
    return f"http://{lab.node(node).lan_ipv4}:{PORT}{path}"


def fetch(lab: Lab, address: str) -> str:
    """GET `address` from the client's namespace."""
    code = (
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    )
    return lab.run(CLIENT, [sys.executable, "-c", code, address], timeout=15).stdout


def test_the_page_follows_a_takeover_by_itself(
    lab: Lab, cluster: LabCluster, tmp_path: Path
) -> None:
    cluster.start_all()
    active = cluster.wait_active(30)
    standby = "beta" if active == "alpha" else "alpha"
    cluster.wait_for(
        "the standby to confirm the active node",
        lambda: (
            (s := cluster.status(standby)) is not None
            and s["role"] == "standby"
            and all(p["confirmed"] for p in s["peers"])
        ),
        15,
    )
    with Browser(ns_argv(lab.node(CLIENT).ns, []), width=1400, height=1200) as browser:
        # The active node's page: both nodes, with their roles.
        browser.open(url(lab, active))
        browser.wait_for(
            "the active page to draw itself active", f"{role_of(active)} === 'active'", 15
        )
        browser.wait_for(
            "the active page to draw the standby", f"{role_of(standby)} === 'standby'", 15
        )
        assert browser.evaluate("document.querySelectorAll('[data-link]').length") == 3

        # The standby's page, left open through the power cut.
        browser.open(url(lab, standby))
        browser.wait_for("the standby page to draw itself", f"{role_of(standby)} === 'standby'", 15)
        browser.wait_for(
            "the standby page to draw the active", f"{role_of(active)} === 'active'", 15
        )
        browser.wait_for(
            "the event stream", "document.getElementById('live').dataset.state === 'live'", 15
        )
        loads = browser.evaluate("performance.getEntriesByType('navigation').length")
        browser.evaluate("window.__marker = 'same document'")

        lab.power_loss(active)
        assert cluster.wait_active(30, other_than=active) == standby
        browser.wait_for(
            "the page to show the standby active", f"{role_of(standby)} === 'active'", 15
        )
        browser.wait_for(
            "the page to show the old active lost", f"{role_of(active)} === 'lost'", 15
        )
        browser.wait_for(
            "the takeover in the events",
            "[...document.querySelectorAll('#events li')]"
            ".some(li => li.dataset.kind === 'alarm.takeover')",
            15,
        )
        browser.wait_for(
            "a completed takeover timeline",
            "document.querySelector('.timeline[data-outcome=\"active\"]') !== null",
            15,
        )
        # Every link to the old active is drawn down, and no reload happened.
        browser.wait_for(
            "every link drawn down",
            "[...document.querySelectorAll('[data-link]')].every(l => l.dataset.state === 'down')",
            15,
        )
        assert browser.evaluate("window.__marker") == "same document"
        assert browser.evaluate("performance.getEntriesByType('navigation').length") == loads
        resources = browser.evaluate(
            "[...document.querySelectorAll('#resources tr')].map(r => r.dataset.state)"
        )
        assert resources == ["running"]
        shot = browser.screenshot()

        # The action buttons send the token typed in: a wrong one is refused by the agent,
        # the right one reaches the engine (which has no node to switch over to now).
        token = (lab.workdir / "http-token").read_text().strip()
        for typed in ("a-wrong-token-of-some-length", token):
            browser.evaluate(
                "(t => { window.confirm = () => true;"
                f"t.value = {json.dumps(typed)}; t.dispatchEvent(new Event('input'));"
                "document.querySelector('[data-action=switchover]').click(); return true; })"
                "(document.getElementById('token'))"
            )
            answer = browser.wait_for(
                "the action's answer",
                "(r => r.className !== 'result' && r.textContent)"
                "(document.getElementById('result'))",
                15,
            )
            if typed == token:
                assert "refused" not in answer
            else:
                assert answer.startswith("refused (403)")
        assert cluster.status(standby)["role"] == "active"  # type: ignore[index]
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
    (tmp_path / "status-page.png").write_bytes(shot)
    keep = os.environ.get(SCREENSHOT_ENV)
    if keep:
        Path(keep).write_bytes(shot)

    # The new active node's metrics, scraped over the LAN, count the takeover.
    metrics = fetch(lab, url(lab, standby, "/metrics"))
    assert f'hotstandby_role{{node="{standby}",role="active"}} 1.0' in metrics
    assert "hotstandby_takeovers_total 1.0" in metrics
    assert f'hotstandby_link_up{{link="lan",peer="{active}"}} 0.0' in metrics
