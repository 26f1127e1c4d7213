"""Heartbeat paths: one per link, sender and receiver, each with its own fault state."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hotstandby.core.cluster import Cluster, LinkKind

# Healthy one-way delay per link kind: (base, jitter) in seconds. A serial line at
# 9600 baud needs tens of milliseconds for a heartbeat; a disk slot is read on a poll.
BASE_DELAY = {
    LinkKind.UDP: (0.0002, 0.001),
    LinkKind.SERIAL: (0.015, 0.01),
    LinkKind.DISK: (0.002, 0.02),
}


class Path:
    """One link in one direction. Jitter above the gap between beats reorders them."""

    __slots__ = (
        "base_delay",
        "base_jitter",
        "cut",
        "delay",
        "drop",
        "dst",
        "dup",
        "jitter",
        "kind",
        "link",
        "src",
        "token",
    )

    def __init__(self, link: str, kind: LinkKind, src: int, dst: int) -> None:
        self.link = link
        self.kind = kind
        self.src = src
        self.dst = dst
        self.base_delay, self.base_jitter = BASE_DELAY[kind]
        # Several overlapping cuts may cover a path: it is cut while any of them lasts.
        self.cut = 0
        self.token = 0
        self.reset_quality()

    def reset_quality(self) -> None:
        """Back to a healthy path (cuts are counted apart)."""
        self.drop = 0.0
        self.dup = 0.0
        self.delay = self.base_delay
        self.jitter = self.base_jitter

    def set_quality(self, drop: float, delay: float, jitter: float, dup: float) -> int:
        """Degrade the path; returns a token for clear_quality."""
        self.drop, self.delay, self.jitter, self.dup = drop, delay, jitter, dup
        self.token += 1
        return self.token

    def clear_quality(self, token: int) -> None:
        """Undo set_quality unless a later fault replaced it."""
        if token == self.token:
            self.reset_quality()


@dataclass(frozen=True)
class Degradation:
    """A fault's effect on a path's quality."""

    drop: float
    delay: float
    jitter: float
    dup: float


class Network:
    """Every path of the cluster, grouped by sender for the fast send loop."""

    def __init__(self, cluster: Cluster) -> None:
        names = cluster.node_names
        self.paths: dict[tuple[str, int, int], Path] = {}
        self.out: list[list[Path]] = [[] for _ in names]
        for link in cluster.links:
            for s in range(len(names)):
                for d in range(len(names)):
                    if s != d:
                        p = Path(link.name, link.kind, s, d)
                        self.paths[(link.name, s, d)] = p
                        self.out[s].append(p)

    def pair(self, src: int, dst: int) -> list[Path]:
        """The paths from src to dst, one per link."""
        return [p for p in self.out[src] if p.dst == dst]

    def heal(self) -> None:
        """Every path healthy and uncut."""
        for p in self.paths.values():
            p.cut = 0
            p.token += 1
            p.reset_quality()

    def loss_of_all(self, src: int, dst: int, beats: int) -> float:
        """Chance that every path src->dst loses `beats` heartbeats in a row."""
        chance = 1.0
        for p in self.pair(src, dst):
            chance *= 1.0 if p.cut else p.drop**beats
        return chance


def jittered(rng: random.Random, p: Path) -> float:
    """One copy's one-way delay on `p`."""
    return p.delay + p.jitter * rng.random() if p.jitter else p.delay
