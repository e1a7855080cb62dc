"""Generated from proto/ctnet/v1/ctnet.proto by grpcio-tools (see clients/python/README.md)."""
