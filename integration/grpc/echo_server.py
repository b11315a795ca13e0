"""A trivial gRPC upstream for the proxyless-gRPC test: answers the method
/sextant.demo.Echo/Say with "<name>-<version>" (raw bytes, no protobuf needed),
or fails with INTERNAL when the request is "fail".

Usage: python3 echo_server.py --listen 127.0.1.101:0 --name reviews --version v1
Prints "listening on <addr>" once it serves.
"""
import argparse
import sys
from concurrent import futures

import grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()

    answer = f"{args.name}-{args.version}".encode()

    def say(request, context):
        if request == b"fail":
            context.abort(grpc.StatusCode.INTERNAL, "asked to fail")
        return answer

    handler = grpc.method_handlers_generic_handler(
        "sextant.demo.Echo",
        {"Say": grpc.unary_unary_rpc_method_handler(say)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    host = args.listen.rsplit(":", 1)[0]
    port = server.add_insecure_port(args.listen)
    server.start()
    print(f"listening on {host}:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
