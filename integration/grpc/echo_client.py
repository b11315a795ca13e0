"""A proxyless gRPC client for the test: calls /sextant.demo.Echo/Say on an
xds:/// target N times and prints a JSON object counting the answers (or
the gRPC status codes of failures). The xDS bootstrap comes from the file
named by GRPC_XDS_BOOTSTRAP, as gRPC reads it.

Usage: python3 echo_client.py xds:///reviews.default.svc.cluster.local:9080 100
       python3 echo_client.py 127.0.0.1:15001 100 reviews:9080   (through an Envoy
       sidecar's outbound listener, with that :authority)
With ECHO_FAIL_EVERY=k, every k-th call (from the first) sends "fail", which
the echo server answers with INTERNAL.
"""
import collections
import os
import json
import sys

import grpc


def main():
    target, count = sys.argv[1], int(sys.argv[2])
    fail_every = int(os.environ.get("ECHO_FAIL_EVERY", "0"))
    options = [("grpc.default_authority", sys.argv[3])] if len(sys.argv) > 3 else []
    answers = collections.Counter()
    with grpc.insecure_channel(target, options=options) as channel:
        say = channel.unary_unary("/sextant.demo.Echo/Say")
        failures = 0
        for i in range(count):
            asked_to_fail = fail_every > 0 and i % fail_every == 0
            try:
                request = b"fail" if asked_to_fail else b"hello"
                answers[say(request, timeout=5, wait_for_ready=True).decode()] += 1
            except grpc.RpcError as error:
                answers[f"error {error.code().name}: {error.details()}"] += 1
                failures += 0 if asked_to_fail else 1
                if failures == 3:
                    break  # enough to tell what is wrong
    print(json.dumps(answers, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
