"""The witness: a lease service on a third machine that breaks the tie between two nodes.

`protocol` is the authenticated wire format shared with the agent's client
(`hotstandby.agent.witness_client`), `lease` the pure lease table, `state` its
file, `server` the asyncio UDP service that `hotstandby witness` runs.
"""
