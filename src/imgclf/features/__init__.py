"""Frozen ImageNet backbones and the content-keyed feature store that serves their vectors."""
