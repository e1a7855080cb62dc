"""A client that knows nothing of ctnet's .proto files.

It discovers the services through server reflection, builds requests from
the reflected descriptors (with --dual NAME SUBNET SUBNET6 first a
CreateNetwork for a dual-stack network, then ListNetworks), calls them, and
checks health. Prints one JSON object:
{"services": [...], "networks": [{"name", "subnet", "ipv6_subnet"}...], "health": "..."}.

Usage: reflect_client.py SOCKET [--health-only] [--dual NAME SUBNET SUBNET6]
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


def call(channel, pool, method_name, **fields):
    """Calls ctnet.v1.NetworkService/METHOD with a request of these fields."""
    service = pool.FindServiceByName("ctnet.v1.NetworkService")
    method = service.FindMethodByName(method_name)
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    stub = channel.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    return stub(request_cls(**fields), timeout=5)


def list_networks(channel, dual):
    db = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(db.get_services())
    pool = descriptor_pool.DescriptorPool(db)
    if dual:
        name, subnet, subnet6 = dual
        call(channel, pool, "CreateNetwork", name=name, subnet=subnet, ipv6_subnet=subnet6)
    reply = call(channel, pool, "ListNetworks")
    nets = [
        {"name": n.name, "subnet": n.subnet, "ipv6_subnet": n.ipv6_subnet}
        for n in reply.networks
    ]
    return services, nets


def main():
    socket = sys.argv[1]
    # The default :authority for a unix: target is the socket path, which is
    # not a valid HTTP/2 authority; name the host as grpcurl does.
    options = [("grpc.default_authority", "localhost")]
    with grpc.insecure_channel(f"unix:{socket}", options=options) as channel:
        out = {"health": health(channel)}
        if "--health-only" not in sys.argv:
            dual = None
            if "--dual" in sys.argv:
                at = sys.argv.index("--dual")
                dual = sys.argv[at + 1 : at + 4]
            out["services"], out["networks"] = list_networks(channel, dual)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
