"""Writes the gRPC request body h2load sends in benches/load.sh: one length-prefixed
envoy.service.auth.v3.CheckRequest, the same request the HTTP rows decide, as Envoy would send it.

Usage: grpc-request.py OUT_FILE [HOST:PORT]   (under the Python of scripts/grpc-venv.sh)
With an address, it also sends the request there once and fails unless the answer allows it.
"""

import struct
import sys

from envoy.service.auth.v3 import external_auth_pb2

request = external_auth_pb2.CheckRequest()
http = request.attributes.request.http
http.id = "10520323913658853521"
http.method = "GET"
http.host = "api.example.com"
http.path = "/api/v1/policy-definitions/p-1?ou=accounting"
http.scheme = "https"
http.protocol = "HTTP/1.1"
http.headers.update({
    ":authority": "api.example.com",
    ":method": "GET",
    ":path": http.path,
    ":scheme": "https",
    "user-agent": "wrk",
    "x-request-id": "9b2e7c4a-5d1f-4c1e-8f7e-2a4b6c8d0e1f",
    "x-auth-request-user": "bob@example.com",
})
request.attributes.source.address.socket_address.address = "10.0.0.7"
request.attributes.source.address.socket_address.port_value = 53422
message = request.SerializeToString()
with open(sys.argv[1], "wb") as out:
    # gRPC framing: not compressed, then the length, big-endian.
    out.write(struct.pack(">BI", 0, len(message)) + message)

if len(sys.argv) > 2:
    import grpc
    from envoy.service.auth.v3 import external_auth_pb2_grpc

    with grpc.insecure_channel(sys.argv[2]) as channel:
        answer = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=10)
    if answer.status.code != 0 or not answer.HasField("ok_response"):
        sys.exit(f"the gRPC request is not allowed: {answer}")
