"""One call to ctnet over TLS with a client certificate, knowing nothing of
ctnet's .proto files (the request is built from reflected descriptors).

Usage: tls_call.py HOST:PORT CA CERT KEY SERVICE METHOD REQUEST_JSON
Prints the response as JSON; on an RPC error prints {"code": ..., "details": ...}
and exits 3.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main():
    target, ca, cert, key, service_name, method_name, request = sys.argv[1:8]
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(ca, "rb").read(),
        private_key=open(key, "rb").read(),
        certificate_chain=open(cert, "rb").read(),
    )
    with grpc.secure_channel(target, creds) as channel:
        try:
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
            request_cls = message_factory.GetMessageClass(method.input_type)
            response_cls = message_factory.GetMessageClass(method.output_type)
            call = channel.unary_unary(
                f"/{service_name}/{method_name}",
                request_serializer=request_cls.SerializeToString,
                response_deserializer=response_cls.FromString,
            )
            reply = call(json_format.Parse(request, request_cls()), timeout=20)
        except grpc.RpcError as e:
            print(json.dumps({"code": e.code().name, "details": e.details()}))
            sys.exit(3)
    print(json_format.MessageToJson(reply, preserving_proto_field_name=True))


if __name__ == "__main__":
    main()
