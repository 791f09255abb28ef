"""Real JWTs for auth tests: an RSA key generated in the test, its JWKS file, tokens signed with it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "smartpush-gateway"


class Signer:
    def __init__(self, directory: Path, kid: str = "test-key") -> None:
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        self.jwks = directory / f"jwks-{kid}.json"
        self.jwks.write_text(json.dumps({"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}))

    def token(self, sub: str, *, lifetime_s: float = 600, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + int(lifetime_s), **claims}
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})
