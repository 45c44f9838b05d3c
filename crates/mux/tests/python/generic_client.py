"""A gRPC client that knows nothing of slipway: gRPC's C core (grpcio) and
Google's protobuf runtime, with every type learnt through server reflection.

usage: generic_client.py SOCKET [--list]
Prints one JSON object: the services listed, each service's methods, and
the answers of calls built from reflected descriptors alone (with --list,
only the multiplexer's Components/List: any machine has it).
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def call(channel, pool, method_full_name, request_json):
    method = pool.FindMethodByName(method_full_name)
    request_type = message_factory.GetMessageClass(method.input_type)
    reply_type = message_factory.GetMessageClass(method.output_type)
    path = "/%s/%s" % (method.containing_service.full_name, method.name)
    stub = channel.unary_unary(
        path,
        request_serializer=request_type.SerializeToString,
        response_deserializer=reply_type.FromString,
    )
    reply = stub(json_format.Parse(json.dumps(request_json), request_type()), timeout=10)
    return json_format.MessageToDict(reply)


def main():
    # gRPC's C core sends the socket path as :authority on unix sockets,
    # which the h2 crate refuses (not a valid URI authority); "localhost" is
    # what grpc-go and tonic send (docs/control.md).
    channel = grpc.insecure_channel(
        "unix:" + sys.argv[1], options=[("grpc.default_authority", "localhost")]
    )
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    services = sorted(database.get_services())
    methods = {}
    for name in services:
        service = pool.FindServiceByName(name)
        methods[name] = sorted(m.full_name for m in service.methods)
    out = {
        "services": services,
        "methods": methods,
        "components": call(channel, pool, "slipway.mux.v1.Components.List", {}),
    }
    if sys.argv[2:] == ["--list"]:
        print(json.dumps(out, sort_keys=True))
        return
    out |= {
        "echo": call(channel, pool, "slipway.test.echo.Echo.Unary", {"text": "from python"}),
        "info": call(channel, pool, "slipway.test.info.Info.Get", {}),
        "health": call(channel, pool, "grpc.health.v1.Health.Check", {"service": "slipway.test.info.Info"}),
    }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
