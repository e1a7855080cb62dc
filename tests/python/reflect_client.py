"""A client that knows nothing of ctnet's .proto files.

It discovers the services through server reflection, builds a ListNetworks
request from the reflected descriptors, calls it, and checks health.
Prints one JSON object: {"services": [...], "networks": [...], "health": "..."}.

Usage: reflect_client.py SOCKET [--health-only]
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def list_networks(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(db.get_services())
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName("ctnet.v1.NetworkService")
    method = service.FindMethodByName("ListNetworks")
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    reply = call(request_cls(), timeout=5)
    return services, [n.name for n in reply.networks]


def main():
    socket = sys.argv[1]
    # The default :authority for a unix: target is the socket path, which is
    # not a valid HTTP/2 authority; name the host as grpcurl does.
    options = [("grpc.default_authority", "localhost")]
    with grpc.insecure_channel(f"unix:{socket}", options=options) as channel:
        out = {"health": health(channel)}
        if "--health-only" not in sys.argv:
            out["services"], out["networks"] = list_networks(channel)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
