"""taskscheduler: a distributed job scheduler on etcd."""

__version__ = "0.1.0"
