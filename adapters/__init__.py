"""Adapters: one sub-package per native system (RTP radio gateways, …)."""
