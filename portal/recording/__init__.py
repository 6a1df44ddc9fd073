"""Consented recording: capture, encrypted storage, keys and signed manifests."""
