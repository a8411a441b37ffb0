"""The agent: pulls runs from the leader, executes them under leases and reports results."""
