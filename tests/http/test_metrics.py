"""The metrics collector on two real engines joined by fake links: read at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hotstandby.agent.counters import AgentCounters, Histogram
from hotstandby.agent.loop import Agent
from hotstandby.agent.metrics import exposition, registry_for
from hotstandby.agent.ports import ActionResult
from hotstandby.core.messages import Action, Outcome, Role

from ..agent.harness import Pair, drive

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(agent: Agent) -> Samples:
    """Every sample of the agent's exposition, by name and sorted labels."""
    text = exposition(registry_for(agent)).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError naming it when absent."""
    return samples[(name, tuple(sorted(labels.items())))]


def test_roles_links_resources_and_takeover(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        before = scrape(p.beta.agent)
        assert value(before, "hotstandby_role", node="beta", role="standby") == 1
        assert value(before, "hotstandby_role", node="beta", role="active") == 0
        assert value(before, "hotstandby_link_up", link="net", peer="alpha") == 1
        assert value(before, "hotstandby_link_up", link="serial", peer="alpha") == 1
        assert value(before, "hotstandby_peer_confirmed", peer="alpha") == 1
        assert value(before, "hotstandby_resource_state", resource="vip", state="stopped") == 1
        assert value(before, "hotstandby_takeovers_total") == 0
        assert value(before, "hotstandby_heartbeats_sent_total", link="net") > 0
        alpha = scrape(p.alpha.agent)
        assert value(alpha, "hotstandby_role", node="alpha", role="active") == 1
        assert value(alpha, "hotstandby_resource_state", resource="web", state="running") == 1
        # The pair booted with alpha taking over: one takeover, timed.
        assert value(alpha, "hotstandby_takeovers_total") == 1
        assert value(alpha, "hotstandby_takeover_duration_seconds_count") == 1
        assert value(alpha, "hotstandby_epoch") == p.alpha.agent.engine.epoch

        p.alpha.cut()
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")
        await p.until(
            lambda: p.beta.agent.engine.peers["alpha"].links["net"].state.value == "down",
            "beta sees the net link down",
        )
        after = scrape(p.beta.agent)
        assert value(after, "hotstandby_role", node="beta", role="active") == 1
        assert value(after, "hotstandby_link_up", link="net", peer="alpha") == 0
        assert value(after, "hotstandby_peer_confirmed", peer="alpha") == 0
        assert value(after, "hotstandby_resource_state", resource="vip", state="running") == 1
        assert value(after, "hotstandby_takeovers_total") == 1
        took = p.beta.agent.counters.last_takeover_seconds
        assert took is not None and took > 0
        assert value(after, "hotstandby_takeover_duration_seconds_sum") == took
        assert value(after, "hotstandby_takeover_duration_seconds_bucket", le="+Inf") == 1
        assert value(after, "hotstandby_epoch") > value(before, "hotstandby_epoch")
        # No alarm statistics on this agent: the family is there, without samples.
        assert not [k for k in after if k[0].startswith("hotstandby_alarm_delivery")]

    drive(tmp_path, body)


def test_resource_failures_and_alarm_delivery_failures(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        web = p.alpha.resources["web"]
        web.then(Action.MONITOR, ActionResult(Outcome.FAILED, "gone"))
        await p.until(
            lambda: p.alpha.agent.counters.resource_failures["web"] == 1, "a monitor failure"
        )
        # As the alarm dispatcher publishes its channels in the agent's status sections.
        channels = {"mail": {"kind": "email", "failed": 3}, "syslog": {"failed": 0}}
        vars(p.alpha.agent)["status_sections"] = {"alarms": lambda: channels}
        samples = scrape(p.alpha.agent)
        assert value(samples, "hotstandby_resource_failures_total", resource="web") == 1
        assert value(samples, "hotstandby_resource_failures_total", resource="vip") == 0
        assert value(samples, "hotstandby_alarm_delivery_failures_total", channel="mail") == 3
        assert value(samples, "hotstandby_alarm_delivery_failures_total", channel="syslog") == 0

    drive(tmp_path, body)


def test_takeover_timing_counts_only_completed_takeovers() -> None:
    counters = AgentCounters()
    counters.role_changed(Role.STANDBY, Role.TAKING_OVER, 10.0)
    counters.role_changed(Role.TAKING_OVER, Role.RELEASING, 11.0)  # the start failed
    assert counters.takeovers == 0
    counters.role_changed(Role.RELEASING, Role.ACTIVE, 12.0)  # not a takeover of ours
    assert counters.takeovers == 0
    counters.role_changed(Role.ARBITRATING, Role.TAKING_OVER, 20.0)
    counters.role_changed(Role.TAKING_OVER, Role.ACTIVE, 20.4)
    assert counters.takeovers == 1
    assert counters.last_takeover_seconds is not None
    assert abs(counters.last_takeover_seconds - 0.4) < 1e-9


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram(bounds=(0.1, 1.0, float("inf")))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert abs(h.total - 3.65) < 1e-9
