"""A real OpenID Connect provider for the gateway's staff sign-in tests.

Built on Authlib (the OAuth 2.0 / OpenID Connect library from PyPI) with
Flask: discovery, a JWKS of its RS256 key, the authorization endpoint (a form
that asks who signs in), the token endpoint (client_secret_basic or _post)
and userinfo. PKCE (S256) is required, and so is a nonce: a client that does
not send them, or sends the wrong verifier, gets no tokens.

    python3 provider.py --client-id ID --client-secret SECRET \
        --redirect-uri URL --users JSON

`--users` maps each subject to its claims, e.g.
`{"sam": {"email": "sam@council.example", "groups": ["selfhelp-notts-operators"]}}`.
Prints the port it listens on (127.0.0.1), then serves until killed.
"""

import argparse
import json
import secrets
import sys
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.jose import JsonWebKey
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from werkzeug.serving import make_server


class Client(ClientMixin):
    def __init__(self, client_id, secret, redirect_uri):
        self.client_id = client_id
        self.secret = secret
        self.redirect_uri = redirect_uri

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uri

    def get_allowed_scope(self, scope):
        allowed = {"openid", "email", "profile", "groups"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


class User:
    def __init__(self, sub, claims):
        self.sub = sub
        self.claims = claims

    def get_user_id(self):
        return self.sub


class Code(AuthorizationCodeMixin):
    def __init__(self, code, client_id, redirect_uri, scope, user, nonce, challenge, method):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.user = user
        self.nonce = nonce
        self.code_challenge = challenge
        self.code_challenge_method = method
        self.auth_time = int(time.time())
        self.expires_at = time.time() + 300

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def is_expired(self):
        return time.time() > self.expires_at

    def get_acr(self):
        return "0"

    def get_amr(self):
        return ["pwd"]


class Token:
    def __init__(self, access_token, scope, user, expires_in):
        self.access_token = access_token
        self.scope = scope
        self.user = user
        self.expires_at = time.time() + expires_in

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return time.time() > self.expires_at

    def is_revoked(self):
        return False


def build(args):
    app = Flask(__name__)
    key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
    key_dict = key.as_dict(is_private=True, kid="provider-1")
    public_jwks = {"keys": [key.as_dict(is_private=False, kid="provider-1", use="sig", alg="RS256")]}
    client = Client(args.client_id, args.client_secret, args.redirect_uri)
    users = {sub: User(sub, claims) for sub, claims in json.loads(args.users).items()}
    codes, tokens, nonces = {}, {}, set()
    issuer = {"url": ""}

    def claims_for(user, scope):
        claims = {"sub": user.sub}
        scopes = set((scope or "").split())
        for name, value in user.claims.items():
            if name in ("email", "email_verified") and "email" not in scopes:
                continue
            claims[name] = value
        return claims

    class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code, req):
            codes[code] = Code(
                code,
                req.client.get_client_id(),
                req.payload.redirect_uri,
                req.payload.scope,
                req.user,
                req.payload.data.get("nonce"),
                req.payload.data.get("code_challenge"),
                req.payload.data.get("code_challenge_method"),
            )
            nonce = req.payload.data.get("nonce")
            if nonce:
                nonces.add(nonce)

        def query_authorization_code(self, code, client):
            item = codes.get(code)
            if item and item.client_id == client.get_client_id() and not item.is_expired():
                return item
            return None

        def delete_authorization_code(self, authorization_code):
            codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return authorization_code.user

    class OpenIDCodeExtension(OpenIDCode):
        def exists_nonce(self, nonce, req):
            return nonce in nonces

        def get_jwt_config(self, grant):
            return {"key": key_dict, "alg": "RS256", "iss": issuer["url"], "exp": 300}

        def generate_user_info(self, user, scope):
            return UserInfo(claims_for(user, scope))

    def save_token(token, req):
        tokens[token["access_token"]] = Token(
            token["access_token"], token.get("scope", ""), req.user, token.get("expires_in", 300)
        )

    server = AuthorizationServer(
        app,
        query_client=lambda cid: client if cid == client.client_id else None,
        save_token=save_token,
    )
    server.register_grant(
        AuthorizationCodeGrant,
        [OpenIDCodeExtension(require_nonce=True), CodeChallenge(required=True)],
    )

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string):
            return tokens.get(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.before_request
    def remember_issuer():
        issuer["url"] = request.host_url.rstrip("/")

    @app.get("/.well-known/openid-configuration")
    def discovery():
        base = issuer["url"]
        return jsonify(
            {
                "issuer": base,
                "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token",
                "userinfo_endpoint": base + "/userinfo",
                "jwks_uri": base + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "groups"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "groups"],
            }
        )

    @app.get("/jwks")
    def jwks():
        return jsonify(public_jwks)

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        if request.method == "GET":
            try:
                server.get_consent_grant(end_user=None)
            except Exception as error:  # a bad request: say why
                return f"refused: {error}", 400
            return (
                "<!doctype html><title>Sign in</title><form method=post>"
                "<label>Who <input name=sub></label><button>Sign in</button></form>"
            )
        user = users.get(request.form.get("sub", ""))
        return server.create_authorization_response(grant_user=user)

    @app.post("/token")
    def token():
        return server.create_token_response()

    @app.route("/userinfo", methods=["GET", "POST"])
    @protect("openid")
    def userinfo():
        return jsonify(claims_for(current_token.user, current_token.scope))

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--users", required=True)
    args = parser.parse_args()
    http = make_server("127.0.0.1", 0, build(args), threaded=True)
    print(http.server_port, flush=True)
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
