"""gatepass as an OpenID Connect provider, driven by authlib (an independent client).

Validates the discovery document with authlib's RFC 8414 and OpenID Connect Discovery
validators, signs a user in through gatepass's own login and consent pages (a requests
cookie session), completes the authorization code flow with PKCE (S256) through
authlib's OAuth2Session, validates the ID token against the JWKS (signature, iss, aud,
nonce, at_hash), calls userinfo, refreshes, revokes the grant at the discovered
revocation endpoint (RFC 7009, authenticated as the client), and gets a
client_credentials token.

Usage: check_oidc_authlib.py BASE CLIENT_ID CLIENT_SECRET CC_ID CC_SECRET USERNAME PASSWORD EMAIL
Prints one JSON line with what it saw; exits non-zero on any failure.
"""

import json
import re
import secrets
import sys
import time
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    base, client_id, client_secret, cc_id, cc_secret, username, password, email = sys.argv[1:9]
    redirect_uri = "http://127.0.0.1:9/callback"

    meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    AuthorizationServerMetadata(meta).validate()
    OpenIDProviderMetadata(meta).validate()
    as_meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    AuthorizationServerMetadata(as_meta).validate()
    issuer = meta["issuer"]
    check(issuer == base, f"issuer {issuer!r} is not {base!r}")

    client = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile email offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    uri, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    # The browser: gatepass's login page, then its consent page, then back to the client.
    browser = requests.Session()
    page = browser.get(uri, allow_redirects=False, timeout=10)
    check(page.status_code == 200, f"authorize without a session: {page.status_code}")
    m = re.search(r'name="return_to" value="([^"]+)"', page.text)
    check(m, "the login page carries no return_to")
    return_to = m.group(1).replace("&amp;", "&").replace("&#38;", "&").replace("&#x27;", "'").replace("&quot;", '"')
    origin = {"Origin": base}
    r = browser.post(
        f"{base}/ui/login",
        data={"username": username, "password": password, "return_to": return_to},
        headers=origin,
        allow_redirects=False,
        timeout=10,
    )
    check(r.status_code == 303, f"login: {r.status_code} {r.text[:200]}")
    check(r.headers["Location"].startswith("/oauth/authorize?"), f"login went to {r.headers['Location']}")
    consent = browser.get(base + r.headers["Location"], allow_redirects=False, timeout=10)
    check(consent.status_code == 200 and "Allow" in consent.text, f"consent page: {consent.status_code}")
    check(consent.headers.get("X-Frame-Options") == "DENY", "the consent page can be framed")
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', consent.text))
    fields = {k: v.replace("&amp;", "&").replace("&#38;", "&") for k, v in fields.items()}
    fields["decision"] = "allow"
    r = browser.post(f"{base}/oauth/consent", data=fields, headers=origin, allow_redirects=False, timeout=10)
    check(r.status_code == 303, f"consent: {r.status_code} {r.text[:200]}")
    callback = r.headers["Location"]
    check(callback.startswith(redirect_uri + "?"), f"redirected to {callback}")
    params = parse_qs(urlsplit(callback).query)
    check(params.get("state") == [state], "state not returned")
    check(params.get("iss") == [issuer], "iss not returned (RFC 9207)")

    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    for key in ("access_token", "id_token", "refresh_token", "expires_in"):
        check(key in token, f"token response lacks {key}")
    check(token["token_type"].lower() == "bearer", "token_type")

    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(now=int(time.time()), leeway=30)
    check(claims["aud"] == client_id, "aud")
    check(claims.header["alg"] == "RS256", f"ID token alg {claims.header['alg']}")
    for key in ("auth_time", "amr", "at_hash", "sub"):
        check(key in claims, f"ID token lacks {key}")

    # Access token: an RFC 9068 JWT, verifiable with the same JWKS.
    at = jwt.decode(token["access_token"], jwks)
    check(at.header["typ"] == "at+jwt", "access token typ")
    check(at["client_id"] == client_id and at["sub"] == claims["sub"], "access token claims")

    info = client.get(meta["userinfo_endpoint"]).json()
    check(info["sub"] == claims["sub"], "userinfo sub")
    check(info.get("preferred_username") == username, f"userinfo username {info}")
    check(info.get("email") == email, f"userinfo email {info}")

    old_refresh = token["refresh_token"]
    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    check(refreshed["refresh_token"] != old_refresh, "refresh did not rotate")
    check(client.get(meta["userinfo_endpoint"]).status_code == 200, "userinfo after refresh")

    revoked = client.revoke_token(meta["revocation_endpoint"], token=refreshed["refresh_token"],
                                  token_type_hint="refresh_token")
    check(revoked.status_code == 200, f"revocation: {revoked.status_code} {revoked.text[:200]}")
    check(client.get(meta["userinfo_endpoint"]).status_code == 401, "userinfo after the revocation")

    machine = OAuth2Session(cc_id, cc_secret)
    cc = machine.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    cc_claims = jwt.decode(cc["access_token"], jwks)
    check(cc_claims["sub"] == cc_id and "refresh_token" not in cc, "client_credentials token")

    print(json.dumps({"sub": claims["sub"], "refreshed": True, "revoked": True, "client_credentials": True, "scope": token.get("scope")}))


if __name__ == "__main__":
    main()
