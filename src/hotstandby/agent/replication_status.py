"""The replicated data as `status`, `why` and the health endpoints show it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent


def replication_view(agent: Agent, now: float) -> dict[str, Any] | None:
    """This node's view of the replicated data; None when the cluster has none."""
    engine = agent.engine
    repl = engine.repl
    if repl is None:
        return None
    report = repl.report
    replicas = []
    if repl.primary and report is not None:
        for r in report.replicas:
            replicas.append(
                {
                    "node": r.node,
                    "state": r.state,
                    "sync": r.sync,
                    "lag_bytes": max(0, report.lsn - r.flush_lsn),
                    "required": r.node in repl.required,
                    "promotable": r.node in repl.listed,
                }
            )
    why_not = None if repl.primary else repl.believes(now, engine.peers)
    follow = agent.following
    return {
        "resource": repl.rules.resource,
        "synchronous": repl.rules.synchronous,
        "on_replica_lost": repl.rules.on_replica_lost.value,
        "primary": repl.primary,
        "required": sorted(repl.required),
        "promotable": list(repl.listed),
        "dropping": sorted(repl.dropping),
        "replicas": replicas,
        # This node's copy, as a standby sees it.
        "copy_promotable": repl.primary or why_not is None,
        "why_not_promotable": None if why_not is None else why_not.detail,
        "held_back": None if engine.repl_blocked is None else engine.repl_blocked.detail,
        "following": None
        if follow is None
        else {
            "primary": follow.primary,
            "ok": follow.ok,
            "streaming": follow.streaming,
            "detail": follow.detail,
            "diverged": follow.diverged,
        },
    }


def explain(view: dict[str, Any] | None) -> list[str]:
    """The replication's state in sentences, for `why` and `status`."""
    if view is None:
        return []
    mode = "synchronous" if view["synchronous"] else "asynchronous"
    lines = [f"replicated data ({view['resource']}, {mode}, on replica lost: "
             f"{view['on_replica_lost']})"]  # fmt: skip
    if view["primary"]:
        required = ", ".join(view["required"]) or "none (commits do not wait)"
        promotable = ", ".join(view["promotable"]) or "none"
        lines.append(f"  primary here; commits wait for: {required}; promotable: {promotable}")
        for r in view["replicas"]:
            lines.append(
                f"  replica {r['node']}: {r['state']}, {'sync' if r['sync'] else 'async'}, "
                f"{r['lag_bytes']} bytes behind" + ("" if r["promotable"] else ", NOT promotable")
            )
        if view["dropping"]:
            lines.append(f"  going on without: {', '.join(view['dropping'])}")
        return lines
    if view["copy_promotable"]:
        lines.append("  this node's copy may be promoted")
    else:
        lines.append(f"  this node's copy may NOT be promoted: {view['why_not_promotable']}")
    if view["held_back"]:
        lines.append(f"  held back from taking over: {view['held_back']}")
    follow = view["following"]
    if follow is not None:
        state = "streaming" if follow["streaming"] else ("ok" if follow["ok"] else "FAILING")
        lines.append(
            f"  copy follows {follow['primary'] or 'no primary'}: {state}"
            + (f" ({follow['detail']})" if follow["detail"] else "")
        )
        if follow["diverged"]:
            lines.append(f"  diverged data saved in {follow['diverged']}")
    return lines
