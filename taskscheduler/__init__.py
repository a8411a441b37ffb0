"""taskscheduler: a distributed job scheduler on etcd."""

import os

__version__ = "0.1.0"

# Every child these processes start execs at once and never uses gRPC, so
# gRPC's fork handlers only add risk: with them on, a fork taken while gRPC
# threads are busy has crashed children (epoll_wait "Bad file descriptor",
# grpcio 1.85). Set before any module imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
