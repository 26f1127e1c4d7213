"""The deterministic simulator: the real core of every node against a simulated world.

One `random.Random(seed)` drives the clocks, the network, the resources, the fence
device, the arbiter and the faults, so any failure replays from its seed.
"""
