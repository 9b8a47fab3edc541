"""Batched multi-agent environments that follow the protocol of docs/env_api.md."""
