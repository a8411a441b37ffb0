"""Generated protobuf and gRPC stubs of the taskscheduler.v1 API."""
