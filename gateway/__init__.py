"""The gateway: REST/JSON to gRPC, with routes read from the google.api.http annotations."""
