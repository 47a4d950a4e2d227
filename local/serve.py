"""Serve the API locally on a port, for a phone or a script: `bin/serve [--port 8000]`.

Starts the local stack (see local/stack.py) and prints a development token and curl examples.
"""

from __future__ import annotations

import argparse
import sys

from local.stack import start_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/serve", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1",
                        help="0.0.0.0 to let a phone on your network reach it (dev tokens are unsigned!)")
    parser.add_argument("--sub", default="local-dev-user", help="the user the printed token identifies")
    args = parser.parse_args(argv)
    stack = start_stack().apply()
    from chatcore.web.identity import unsigned_jwt

    token = unsigned_jwt({"sub": args.sub})
    base = f"http://{args.host if args.host != '0.0.0.0' else '127.0.0.1'}:{args.port}"
    print(f"""
Chat API on {base}  (model: {stack.model_description})
Development token for sub={args.sub!r} (unsigned; accepted only because ALLOW_UNSIGNED_JWT=1):

  export TOKEN={token}
  curl -s -X POST {base}/sessions -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"agent": "assistant"}}'
  curl -N -X POST {base}/sessions/SESSION_ID/turns -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{{"message": "What is 12 * 7?"}}'
""", file=sys.stderr, flush=True)
    from local.server import serve_forever

    try:
        serve_forever(args.host, args.port)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
