"""Helpers shared by tests: in-process servers, a real Prometheus, the Kubernetes emulator."""
