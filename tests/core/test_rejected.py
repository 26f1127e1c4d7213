"""Illegal inputs get a Rejected command and change nothing; the tables are total."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.core.engine import Claim, Engine, Release
from hotstandby.core.messages import (
    Action,
    AdminAction,
    AdminRequest,
    ArbiterAnswer,
    ArbiterOutcome,
    Boot,
    Event,
    FenceDone,
    Heartbeat,
    HeartbeatReceived,
    Outcome,
    Reason,
    Rejected,
    ResourceDone,
    Role,
    Tick,
)
from hotstandby.core.table import ADMIN, EVENT_TYPES, EVENTS, Reject

from .pair import make_cluster


def state(engine: Engine) -> str:
    """Everything the engine knows, but the clock and the output buffer, as text.

    The dataclasses' reprs show every field, so equal text means equal state; the
    cluster is frozen and left out.
    """
    skip = ("now", "_out", "cluster", "group")
    known = {k: v for k, v in vars(engine).items() if k not in skip}
    return repr(known) + repr(engine.group.items)


def booted() -> Engine:
    """An engine booted at 0 with its probes answered: nothing runs here."""
    e = Engine(make_cluster(), "alpha")
    e.step(Boot(7), 0.0)
    for r in ("ip", "vol", "db"):
        e.step(ResourceDone(r, Action.PROBE, Outcome.STOPPED), 0.01)
    return e


BEAT = Heartbeat(sender="beta", boot=9, seq=1, epoch=0, role=Role.STANDBY, holds=False)

ILLEGAL: list[tuple[str, Event]] = [
    ("resource answer with nothing outstanding", ResourceDone("ip", Action.START, Outcome.OK)),
    ("answer for an unknown resource", ResourceDone("nfs", Action.STOP, Outcome.OK)),
    ("fence answer with no fence", FenceDone("beta", True)),
    (
        "heartbeat from an unknown node",
        HeartbeatReceived("net", Heartbeat("gamma", 1, 1, 0, Role.STANDBY, False)),
    ),
    (
        "heartbeat from ourselves",
        HeartbeatReceived("net", Heartbeat("alpha", 1, 1, 0, Role.STANDBY, False)),
    ),
    ("heartbeat on an unknown link", HeartbeatReceived("wifi", BEAT)),
    ("a second boot", Boot(8)),
]


@pytest.mark.parametrize(("why", "event"), ILLEGAL, ids=[w for w, _ in ILLEGAL])
def test_an_illegal_event_is_rejected_and_changes_nothing(why: str, event: Event) -> None:
    e = booted()
    before = state(e)
    out = e.step(event, 0.05)
    assert len(out) == 1 and isinstance(out[0], Rejected), why
    assert out[0].event == event and out[0].reason.rule == "table.reject" and out[0].reason.detail
    assert state(e) == before


@pytest.mark.parametrize(
    "event",
    [
        Tick(),
        HeartbeatReceived("net", BEAT),
        ResourceDone("ip", Action.PROBE, Outcome.OK),
        FenceDone("beta", True),
        ArbiterAnswer(ArbiterOutcome.GRANTED, 0.0),
        AdminRequest("r1", AdminAction.SWITCHOVER),
    ],
)
def test_any_event_before_boot_is_rejected(event: Event) -> None:
    e = Engine(make_cluster(), "alpha")
    before = state(e)
    out = e.step(event, 1.0)
    assert [type(c) for c in out] == [Rejected]
    assert state(e) == before and e.next_deadline() is None


def test_an_engine_is_made_only_for_a_node_of_its_cluster() -> None:
    with pytest.raises(KeyError):
        Engine(make_cluster(), "gamma")


def test_every_role_and_event_type_has_an_entry() -> None:
    for role in Role:
        for etype in EVENT_TYPES:
            entry = EVENTS[(role, etype)]
            assert isinstance(entry, Reject) or hasattr(Engine, entry), (role, etype)
    assert len(EVENTS) == len(Role) * len(EVENT_TYPES)


def test_every_role_and_admin_action_has_an_entry() -> None:
    for role in Role:
        for action in AdminAction:
            entry = ADMIN[(role, action)]
            assert isinstance(entry, Reject) or hasattr(Engine, entry), (role, action)
    assert len(ADMIN) == len(Role) * len(AdminAction)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.sampled_from(list(Role)), st.sampled_from(list(AdminAction)))
def test_admin_requests_in_any_role_get_exactly_one_reply(role: Role, action: AdminAction) -> None:
    # Force the role directly: the reply must come from the table entry for that pair,
    # whatever the rest of the state (this is the table's totality, exercised).
    e = booted()
    e.role = role
    # The roles' own invariants: a releasing node knows why, an arbitrating one its claim.
    if role is Role.RELEASING:
        e.release = Release(Reason("test"))
    if role is Role.ARBITRATING:
        e.claim = Claim(started=0.0)
    out = e.step(AdminRequest("x", action), 0.5)
    replies = [c for c in out if type(c).__name__ == "Reply"]
    assert len(replies) == 1
    entry = ADMIN[(role, action)]
    if isinstance(entry, Reject):
        assert not getattr(replies[0], "ok", True)
        assert getattr(replies[0], "message", "") == entry.why
