#!/usr/bin/env python3
"""An independent OpenID Connect relying party, written with Authlib, signs in with wxauth.

discovery -> authorization URL (PKCE S256, nonce, scope "openid profile") -> the simulator's
WeChat QR page ("scan" as a simulated user) and wxauth's consent page, followed with plain HTTP
requests -> code -> tokens (PKCE verifier, client_secret_basic) -> ID token checked against the
JWKS (signature, iss, aud, exp, iat, nonce, azp) -> userinfo -> refresh (its new ID token checked
the same way, without a nonce) -> the code replayed (refused with invalid_grant). The authorization
response must name the issuer (RFC 9207 `iss`).

Usage: authlib_client.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI [SIM_USER]

Prints one JSON line with what it saw; exits non-zero on any failure.
"""

import html
import json
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urldefrag, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130"


class Failure(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Failure(what)


class Forms(HTMLParser):
    """The `<a id=...>` links and the `<input type=hidden>` fields of a page."""

    def __init__(self):
        super().__init__()
        self.links = {}
        self.hidden = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("id") and attrs.get("href"):
            self.links[attrs["id"]] = attrs["href"]
        if tag == "input" and attrs.get("type") == "hidden":
            self.hidden.append((attrs.get("name", ""), attrs.get("value", "")))


def parse(page):
    forms = Forms()
    forms.feed(page)
    return forms


def browse(url, redirect_uri, user):
    """Play the user's browser from the authorization URL until it is sent to redirect_uri."""
    browser = requests.Session()
    browser.headers["User-Agent"] = DESKTOP
    response = None
    for _ in range(20):
        if response is None:
            response = browser.get(url, allow_redirects=False, timeout=30)
        if response.is_redirect:
            url = urldefrag(urljoin(url, response.headers["Location"])).url
            if url.startswith(redirect_uri):
                return url
            response = None
            continue
        check(response.status_code == 200, f"{url}: HTTP {response.status_code}: {response.text[:500]}")
        forms = parse(response.text)
        scan = forms.links.get(f"scan-{user}")
        if scan:
            # The simulator's QR page: the simulated phone "scans" by following the link.
            url = urljoin(url, html.unescape(scan))
            response = None
            continue
        fields = dict(forms.hidden)
        check("csrf_token" in fields, f"{url}: neither the QR page nor the consent page: {response.text[:500]}")
        # wxauth's consent page: approve.
        url = urljoin(url, "/oauth/authorize")
        response = browser.post(url, data={**fields, "decision": "approve"}, allow_redirects=False, timeout=30)
    raise Failure(f"too many steps, last at {url}")


def verify_id_token(id_token, keys, algorithms, issuer, client_id, nonce, access_token):
    """Authlib's own ID-token check (as its OpenID integrations run it)."""
    token = jwt.decode(id_token, key=keys, registry=JWSRegistry(algorithms=algorithms))
    claims = CodeIDToken(
        token.claims,
        token.header,
        {"iss": {"essential": True, "values": [issuer]}},
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    claims.validate(leeway=60)
    return token.header, dict(claims)


def main(issuer, client_id, client_secret, redirect_uri, user="alice"):
    metadata = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=30).json()
    check(metadata["issuer"] == issuer, f"issuer {metadata['issuer']!r}")
    check("S256" in metadata.get("code_challenge_methods_supported", []), "S256 not advertised")
    algorithms = metadata["id_token_signing_alg_values_supported"]
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=30).json())

    client = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    back = browse(url, redirect_uri, user)
    returned = parse_qs(urlparse(back).query)
    check(returned.get("state") == [state], f"state not returned: {back}")
    check("code" in returned, f"no code: {back}")
    check(returned.get("iss") == [issuer], f"the authorization response does not name the issuer: {back}")

    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=back, state=state, code_verifier=verifier
    )
    check(token["token_type"].lower() == "bearer", f"token_type {token['token_type']!r}")
    header, claims = verify_id_token(
        token["id_token"], keys, algorithms, issuer, client_id, nonce, token["access_token"]
    )

    # The same ID token fails for another nonce or another client.
    for other_nonce, other_client in ((generate_token(20), client_id), (nonce, "someone-else")):
        try:
            verify_id_token(token["id_token"], keys, algorithms, issuer, other_client, other_nonce, token["access_token"])
        except JoseError:
            continue
        raise Failure(f"an ID token was accepted with nonce {other_nonce!r} for {other_client!r}")

    userinfo = client.get(metadata["userinfo_endpoint"], timeout=30)
    check(userinfo.status_code == 200, f"userinfo HTTP {userinfo.status_code}: {userinfo.text}")
    userinfo = userinfo.json()
    check(userinfo.get("sub") == claims["sub"], f"userinfo sub {userinfo.get('sub')!r} != {claims['sub']!r}")

    refreshed = client.refresh_token(metadata["token_endpoint"])
    check(refreshed["access_token"] != token["access_token"], "refresh gave the same access token")
    check("id_token" in refreshed, "a refresh with scope openid gave no ID token")
    refreshed_header, refreshed_claims = verify_id_token(
        refreshed["id_token"], keys, algorithms, issuer, client_id, None, refreshed["access_token"]
    )
    check(refreshed_header["alg"] == header["alg"], f"refreshed ID token alg {refreshed_header['alg']!r}")
    after_refresh = client.get(metadata["userinfo_endpoint"], timeout=30)
    check(after_refresh.status_code == 200, f"userinfo after refresh HTTP {after_refresh.status_code}")

    # The code again: refused.
    replayed = OAuth2Session(client_id, client_secret, redirect_uri=redirect_uri)
    try:
        replayed.fetch_token(metadata["token_endpoint"], authorization_response=back, code_verifier=verifier)
        raise Failure("a replayed code was exchanged")
    except OAuthError as error:
        replay_error = error.error

    print(
        json.dumps(
            {
                "issuer": metadata["issuer"],
                "alg": header["alg"],
                "id_token": claims,
                "scope": token.get("scope"),
                "userinfo": userinfo,
                "refreshed": True,
                "refreshed_id_token": refreshed_claims,
                "replay": replay_error,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except Exception as error:  # noqa: BLE001 - any failure is the script's failure
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
