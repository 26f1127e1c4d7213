"""The witness's lease table against the simulator's model, and its restart hold-off."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from hotstandby.core import timing
from hotstandby.core.cluster import ArbitrationMode, Cluster
from hotstandby.core.messages import ArbiterOutcome, ArbiterRequest
from hotstandby.sim.arbiter import Witness
from hotstandby.witness.lease import LeaseTable, Ledger, restarted
from hotstandby.witness.protocol import Kind, Request, Verdict
from hotstandby.witness.server import lease_span
from tests.core.pair import make_cluster

SPAN = 2.5
steps = st.lists(
    st.tuples(
        st.sampled_from(("alpha", "beta", "gamma")),
        st.sampled_from((ArbiterRequest.CLAIM, ArbiterRequest.RENEW, ArbiterRequest.RELEASE)),
        st.floats(0.0, 3.0),
    ),
    max_size=60,
)


@given(steps)
def test_random_requests_get_the_models_answers(
    seq: list[tuple[str, ArbiterRequest, float]],
) -> None:
    model = Witness(SPAN)
    table = LeaseTable(SPAN)
    t = 0.0
    for node, req, gap in seq:
        t += gap
        expected = model.request(node, req, t)
        table, got = table.request(node, req, t)
        assert got == expected
        assert table.valid_holder(t) == model.valid_holder(t)


@given(steps)
def test_numbered_requests_in_order_get_the_models_answers(
    seq: list[tuple[str, ArbiterRequest, float]],
) -> None:
    model = Witness(SPAN)
    ledger = Ledger(LeaseTable(SPAN))
    kinds = {ArbiterRequest.CLAIM: Kind.CLAIM, ArbiterRequest.RENEW: Kind.RENEW}
    t = 0.0
    for number, (node, req, gap) in enumerate(seq, start=1):
        t += gap
        expected = model.request(node, req, t)
        kind = kinds.get(req, Kind.RELEASE)
        ledger, answer, why = ledger.apply(Request(node, number, kind, 1), t)
        assert why is None
        if expected is None:
            assert answer.verdict is Verdict.RELEASED
        else:
            assert answer.verdict.name == expected.name
        assert answer.holder == model.valid_holder(t)


def test_after_a_restart_only_the_recorded_holder_is_granted_for_one_span() -> None:
    table = restarted(SPAN, "alpha", 100.0)
    same, outcome = table.request("beta", ArbiterRequest.CLAIM, 101.0)
    assert outcome is ArbiterOutcome.DENIED and same.holder == "alpha"
    table, outcome = table.request("alpha", ArbiterRequest.RENEW, 101.0)
    assert outcome is ArbiterOutcome.RENEWED
    table, _ = table.request("alpha", ArbiterRequest.RELEASE, 101.5)
    # Released, but a lease granted before the restart may still run: beta waits.
    waited, outcome = table.request("beta", ArbiterRequest.CLAIM, 102.0)
    assert outcome is None and waited.holder is None
    table, outcome = table.request("beta", ArbiterRequest.CLAIM, 100.0 + SPAN)
    assert outcome is ArbiterOutcome.GRANTED and table.holder == "beta"


def test_after_a_restart_with_no_record_nobody_is_granted_for_one_span() -> None:
    table = restarted(SPAN, None, 0.0)
    _, outcome = table.request("alpha", ArbiterRequest.RENEW, SPAN - 0.01)
    assert outcome is None
    table, outcome = table.request("alpha", ArbiterRequest.RENEW, SPAN)
    assert outcome is ArbiterOutcome.RENEWED


@given(st.floats(0.5, 120.0), st.floats(0.0, 0.01))
def test_the_witness_span_outlasts_the_holders_validity_on_any_clocks(
    lease: float, drift: float
) -> None:
    # The holder's clock may run slow and the witness's fast, each by `drift`: in real
    # time the witness must still keep the lease at least as long as the holder uses it.
    cluster = witness_cluster(lease, drift)
    span = lease_span(cluster)
    validity = timing.lease_validity(cluster)
    assert span / (1 + drift) >= validity / (1 - drift) - 1e-9


def witness_cluster(lease: float, drift: float) -> Cluster:
    """A cluster with these lease timers (only the timers matter here)."""
    base = make_cluster(ArbitrationMode.WITNESS)
    return replace(base, timers=replace(base.timers, lease=lease, max_drift=drift))
