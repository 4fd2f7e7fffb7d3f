"""rollgate's reference inventory service."""
