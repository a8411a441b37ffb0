"""The benchmark harness behind `make bench`.

It starts etcd, coordinators and agents on loopback, drives them with a
load generator over gRPC, and writes the figures with their targets to
docs/benchmarks.md. Run it from the repository root as
`.venv/bin/python -m bench [--quick]`; it is not installed with the
package.
"""
