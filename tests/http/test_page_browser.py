"""The status page in headless Chromium against two agents joined by fake links (no root).

The lab test (`test_page_lab.py`) shows the page through a real power cut; this one runs
wherever Chromium is installed, and checks what the lab cannot stage on demand: the
agent's own takeover timeline records, and the page redrawing itself after a switchover.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotstandby.core.messages import AdminAction, Role

from ..agent.harness import Pair, drive
from .browser import Browser, chromium_missing
from .test_routes import serving

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))

# A `takeover.timeline` record as the agent's timeline recorder writes it.
TIMELINE = {
    "peers": ["beta"],
    "epoch": 7,
    "rule": "takeover.fenced",
    "links": {"net": 0.512, "serial": None},
    "stages": [
        {"stage": "peer declared dead [standby.peer_lost]", "offset": 0.512},
        {"stage": "fence confirmed", "offset": 1.104},
        {"stage": "takeover decided [takeover.fenced]", "offset": 1.105},
        {"stage": "vip up", "offset": 1.42},
        {"stage": "active", "offset": 1.421},
    ],
    "total": 1.421,
}


def role_of(node: str) -> str:
    """JavaScript: the role the page draws for `node`."""
    return f"document.querySelector('[data-node={json.dumps(node)}]')?.dataset.role"


async def in_browser(url: str, look: Callable[[Browser], Any]) -> Any:
    """Open `url` in a fresh browser and run `look` on it, off the event loop."""

    def run() -> Any:
        with Browser(width=1200, height=900) as browser:
            browser.open(url)
            return look(browser)

    return await asyncio.to_thread(run)


def test_the_page_draws_the_agents_takeover_timeline(tmp_path: Path) -> None:
    async def main(p: Pair) -> None:
        await p.settled()
        message = "takeover from beta complete 1421 ms after the last heartbeat"
        p.alpha.agent._record("takeover.timeline", message, "takeover.fenced", timeline=TIMELINE)
        async with serving(p) as (url, _):

            def look(b: Browser) -> Any:
                return b.wait_for(
                    "the timeline drawn",
                    "(t => t && [t.textContent, t.querySelectorAll('.phase').length])"
                    "(document.querySelector('.timeline[data-given]'))",
                    15,
                )

            text, phases = await in_browser(url + "/", look)
        assert "taken over from beta" in text
        assert "active 1.42 s after the last heartbeat" in text
        assert "+1.10 s" in text and "fence confirmed" in text
        assert "net silent 512 ms" in text and "serial never heard" in text
        assert phases == len(TIMELINE["stages"])  # type: ignore[arg-type]

    drive(tmp_path, main, timeout=60)


def test_the_page_redraws_itself_after_a_switchover(tmp_path: Path) -> None:
    async def main(p: Pair) -> None:
        await p.settled()
        async with serving(p) as (url, _):
            loop = asyncio.get_running_loop()

            def switch() -> None:
                asyncio.run_coroutine_threadsafe(
                    p.alpha.agent.admin(AdminAction.SWITCHOVER), loop
                ).result(10)

            def look(b: Browser) -> Any:
                b.wait_for("alpha drawn active", f"{role_of('alpha')} === 'active'", 15)
                b.wait_for("beta drawn standby", f"{role_of('beta')} === 'standby'", 15)
                b.evaluate("window.__marker = 1")
                switch()
                b.wait_for("alpha drawn standby", f"{role_of('alpha')} === 'standby'", 15)
                b.wait_for("beta drawn active", f"{role_of('beta')} === 'active'", 15)
                return b.evaluate("window.__marker")

            assert await in_browser(url + "/", look) == 1  # the same document: no reload
        assert p.beta.role is Role.ACTIVE

    drive(tmp_path, main, timeout=60)
