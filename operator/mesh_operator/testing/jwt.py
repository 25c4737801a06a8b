"""Real JWTs for tests: RSA and EC keys made with ``cryptography``, tokens signed here, a JWKS server on loopback.

    issuer = JwtIssuer("https://issuer.test")
    token = issuer.token(sub="alice", aud="backend")          # RS256, valid for 5 minutes
    with JwksServer(issuer) as server:                        # http://127.0.0.1:<free port>/jwks.json
        ...
        issuer.rotate()                                       # new key; the server serves it from now on

Nothing here is a fake: the signatures are the real algorithms Envoy checks (RS256: PKCS#1 v1.5 with SHA-256,
ES256: P-256 with SHA-256 and the raw ``r || s`` signature of RFC 7518).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int, length: int | None = None) -> str:
    return b64url(n.to_bytes(length or (n.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    kid: str
    alg: str  # RS256 or ES256
    private: Any

    def jwk(self) -> dict[str, str]:
        pub = self.private.public_key()
        if self.alg == "RS256":
            nums = pub.public_numbers()
            return {
                "kty": "RSA",
                "kid": self.kid,
                "alg": "RS256",
                "use": "sig",
                "n": _int_b64(nums.n),
                "e": _int_b64(nums.e),
            }
        nums = pub.public_numbers()
        return {
            "kty": "EC",
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
            "crv": "P-256",
            "x": _int_b64(nums.x, 32),
            "y": _int_b64(nums.y, 32),
        }

    def sign(self, data: bytes) -> bytes:
        if self.alg == "RS256":
            return bytes(self.private.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def new_key(kid: str, alg: str = "RS256") -> SigningKey:
    if alg == "RS256":
        return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    if alg == "ES256":
        return SigningKey(kid, alg, ec.generate_private_key(ec.SECP256R1()))
    raise ValueError(f"unsupported alg {alg!r}")


@dataclass
class JwtIssuer:
    issuer: str
    alg: str = "RS256"
    keys: list[SigningKey] = field(default_factory=list)
    _generation: int = 0

    def __post_init__(self) -> None:
        if not self.keys:
            self.rotate(keep_old=False)

    @property
    def key(self) -> SigningKey:
        """The current signing key (the newest)."""
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = False) -> SigningKey:
        """A new signing key; the JWKS then holds it (and, with ``keep_old``, the previous ones too)."""
        self._generation += 1
        key = new_key(f"key-{self._generation}", self.alg)
        self.keys = [*self.keys, key] if keep_old else [key]
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def jwks_json(self) -> str:
        return json.dumps(self.jwks())

    def token(
        self,
        *,
        sub: str = "alice",
        aud: str | list[str] | None = None,
        lifetime: float = 300,
        issuer: str | None = None,
        key: SigningKey | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": issuer or self.issuer, "sub": sub, "iat": now - 5, "exp": now + int(lifetime)}
        if aud is not None:
            payload["aud"] = aud
        payload.update(claims)
        k = key or self.key
        return encode(payload, k)


def encode(payload: dict[str, Any], key: SigningKey | None, *, alg: str | None = None) -> str:
    """A compact JWS. ``key=None`` gives an unsigned ``alg: none`` token (which a verifier must refuse)."""
    header = {"alg": alg or (key.alg if key else "none"), "typ": "JWT"}
    if key is not None:
        header["kid"] = key.kid
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = b64url(key.sign(signing_input.encode())) if key is not None else ""
    return f"{signing_input}.{signature}"


class JwksServer:
    """Serves ``issuer.jwks()`` (as it is at each request) at ``/jwks.json`` on 127.0.0.1; counts fetches."""

    def __init__(self, issuer: JwtIssuer, port: int = 0) -> None:
        self.issuer = issuer
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                server.fetches += 1
                body = server.issuer.jwks_json().encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
