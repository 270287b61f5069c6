"""An Envoy ext_authz gRPC client built on the gRPC project's own code, not Turnstile's.

Usage: check.py HOST:PORT < requests.json

stdin holds a JSON array of CheckRequest messages in the protobuf JSON mapping. Each is parsed
strictly (an unknown field is an error), sent to envoy.service.auth.v3.Authorization/Check over
HTTP/2 cleartext, and the CheckResponse printed as one JSON line (proto field names). A call
that fails prints {"error": "<gRPC status code>", "details": "..."} instead.
"""

import json
import sys

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import json_format


def main() -> None:
    target = sys.argv[1]
    requests = json.load(sys.stdin)
    with grpc.insecure_channel(target) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for request in requests:
            message = json_format.ParseDict(request, external_auth_pb2.CheckRequest())
            try:
                response = stub.Check(message, timeout=10)
                out = json_format.MessageToDict(response, preserving_proto_field_name=True)
            except grpc.RpcError as e:
                out = {"error": e.code().name, "details": e.details()}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
