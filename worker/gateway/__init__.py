"""All I/O with Argilla: the dataset schema and the gateway object."""

from worker.gateway.client import ArgillaGateway

__all__ = ["ArgillaGateway"]
