"""Interop checks with PyJWT: gatepass tokens verify through the live JWKS (PyJWKClient), and
tokens PyJWT signs with a wrong key or algorithm are refused by gatepass.

usage: check_pyjwt.py BASE_URL ALG ACCESS_TOKEN [HS256_SECRET]
Prints one `PASS name` / `FAIL name: why` line per check.
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

BASE, ALG, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]
SECRET = sys.argv[4] if len(sys.argv) > 4 else None
REQUIRED = {"require": ["exp", "iat", "nbf", "iss", "sub", "jti"]}


def report(name, ok, why=""):
    print(f"PASS pyjwt {ALG}: {name}" if ok else f"FAIL pyjwt {ALG}: {name}: {why}", flush=True)


def status_of(token):
    req = urllib.request.Request(BASE + "/api/profile", headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(header, claims, secret):
    """PyJWT refuses PEM-looking HMAC secrets, so the key-confusion token is made by hand."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(sig)


def expect_refused(name, token):
    code = status_of(token)
    report(name + " is refused by gatepass", code == 401, f"status {code}")


header = jwt.get_unverified_header(TOKEN)
claims = jwt.decode(TOKEN, options={"verify_signature": False})
kid = header.get("kid")
report("token carries a kid", bool(kid), f"header {header}")

# 1. Verification of gatepass's token.
try:
    if ALG == "HS256":
        decoded = jwt.decode(TOKEN, SECRET, algorithms=["HS256"], issuer="gatepass", options=REQUIRED)
    else:
        client = jwt.PyJWKClient(BASE + "/.well-known/jwks.json", cache_keys=True)
        key = client.get_signing_key_from_jwt(TOKEN)
        decoded = jwt.decode(TOKEN, key, algorithms=[ALG], issuer="gatepass", options=REQUIRED)
    report("gatepass token verifies", decoded.get("sub") == claims["sub"], "claims differ")
except Exception as e:  # noqa: BLE001 - any failure is a failed check
    report("gatepass token verifies", False, repr(e))

# 2. Forgeries: signed by PyJWT with keys gatepass does not trust.
attackers = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
forged_header = {"kid": kid, "typ": "at+jwt"}
for alg, key in attackers.items():
    what = "same algorithm, wrong key" if alg == ALG else f"wrong algorithm {alg}"
    expect_refused(what, jwt.encode(claims, key, algorithm=alg, headers=forged_header))
expect_refused("HS256 with a wrong secret", jwt.encode(claims, "x" * 40, algorithm="HS256", headers=forged_header))
expect_refused("alg none", jwt.encode(claims, None, algorithm="none", headers=forged_header))
if ALG != "HS256":
    jwks = json.load(urllib.request.urlopen(BASE + "/.well-known/jwks.json", timeout=10))
    public = jwt.PyJWK(jwks["keys"][0]).key
    for fmt_name, data in [
        ("PEM", public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
        ("DER", public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)),
    ]:
        token = hs256_by_hand({"alg": "HS256", "kid": kid, "typ": "at+jwt"}, claims, data)
        expect_refused(f"HS256 keyed with the public key ({fmt_name})", token)
