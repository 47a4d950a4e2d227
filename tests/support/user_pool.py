"""A Cognito user pool as a function sees it: its signing keys published at
``<issuer>/.well-known/jwks.json`` over real HTTP (a thread on a free port), and RS256 tokens it signs
(PyJWT and cryptography, as the function checks them). ``stranger`` signs with a key the pool never
published."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class UserPool:
    """Start with ``with UserPool() as pool:``; ``pool.issuer`` is what COGNITO_ISSUER names."""

    def __init__(self) -> None:
        self.key, self.stranger = _key(), _key()
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = json.dumps({"keys": [{**jwk, "kid": "pool-key-1", "alg": "RS256", "use": "sig"}]}).encode()
        self.fetches = 0
        pool = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/pool/.well-known/jwks.json":
                    self.send_error(404)
                    return
                pool.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(pool.jwks)))
                self.end_headers()
                self.wfile.write(pool.jwks)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/pool"

    def __enter__(self) -> "UserPool":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, sub: str, *, token_use: str = "id", expires_in: int = 3600, key: Any = None, kid: str = "pool-key-1",
              issuer: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": sub, "iss": issuer or self.issuer, "token_use": token_use, "iat": now,
                   "exp": now + expires_in, "cognito:username": sub, **claims}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid})
