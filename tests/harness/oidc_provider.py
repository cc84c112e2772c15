"""A real OpenID Connect provider for tests, standing for Pro Santé Connect: Authlib's
authorization server (authorization code flow, OpenID Connect ID tokens signed RS256) on
Flask, served by Werkzeug in a thread, with discovery, JWKS and userinfo endpoints. Its ID
tokens and userinfo carry PSC's claims: ``SubjectNameID`` (the national id, "8" + RPPS),
``SubjectRefPro`` (the professional's exercises), ``given_name``, ``family_name``,
``preferred_username``. The person who "authenticates" (with their e-CPS, in real life)
is the one the test sets in ``identity`` before the browser reaches the provider."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from tests.harness.ports import free_port

SCOPES = "openid scope_all"
ACR = "eidas1"  # the eIDAS level PSC requires the client to ask for (acr_values)


@dataclass
class Professional:
    """A PSC identity: the RPPS and names its e-CPS proves."""

    rpps: str
    given_name: str
    family_name: str
    profession_code: str = "60"

    @property
    def national_id(self) -> str:
        return "8" + self.rpps

    def userinfo(self) -> dict[str, Any]:
        return {
            "sub": f"f:{self.national_id}",
            "SubjectNameID": self.national_id,
            "preferred_username": self.national_id,
            "given_name": self.given_name,
            "family_name": self.family_name,
            # The shape of PSC's userinfo as PSC's own code models it
            # (github.com/prosanteconnect/psc-context-sharing-api, model/prosanteconnect):
            # the exercises, each with its activities (structures); other identifiers.
            "SubjectRefPro": {
                "codeCivilite": "M",
                "exercices": [
                    {
                        "codeProfession": self.profession_code,
                        "codeCategorieProfessionnelle": "C",
                        "codeCiviliteDexercice": "",
                        "nomDexercice": self.family_name,
                        "prenomDexercice": self.given_name,
                        "codeTypeSavoirFaire": "",
                        "codeSavoirFaire": "",
                        "activities": [
                            {
                                "codeModeExercice": "L",
                                "codeSecteurDactivite": "SA07",
                                "identifiantTechniqueDeLaStructure": "R10000000001",
                                "raisonSocialeSite": "CABINET",
                                "codePostal": "31000",
                                "codeCommune": "31555",
                                "codePays": "99000",
                            }
                        ],
                    }
                ],
            },
            "otherIds": [{"identifiant": self.national_id, "origine": "RPPS", "qualite": 1}],
            "SubjectOrganization": "CABINET",
            "SubjectRole": [f"{self.profession_code}^1.2.250.1.213.1.1.5.5"],
            "Mode_Acces_Raison": "",
        }  # (the eIDAS level, ``acr``, is a claim of the ID token: Code.get_acr)


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    user: Professional
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return ACR

    def get_amr(self) -> list[str]:
        return ["pop", "mfa"]


@dataclass
class Token:
    access_token: str
    scope: str
    user: Professional
    issued_at: int = field(default_factory=lambda: int(time.time()))
    expires_in: int = 3600

    def check_client(self, client: Client) -> bool:
        return True

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return False


class ProSanteConnect:
    """The provider: ``issuer`` to configure, ``client`` to register, ``identity`` the
    professional who authenticates next."""

    def __init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/auth/realms/esante-wallet"
        self.client = Client(secrets.token_hex(8), secrets.token_urlsafe(24))
        self.identity: Professional | None = None
        self.key = RSAKey.generate_key(2048, parameters={"kid": "psc-test", "use": "sig"})
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}
        self.authorizations = 0
        self.acr_values: list[str] = []  # of each authorization request
        self.app = self._app()

    def _app(self) -> Flask:
        app = Flask("psc")
        provider = self
        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider.client if cid == provider.client.client_id else None,
            save_token=self._save_token,
        )

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
                "client_secret_basic",
                "client_secret_post",
            ]

            def save_authorization_code(self, code: str, req: Any) -> None:
                provider.codes[code] = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.payload.scope,
                    req.payload.data.get("nonce"),
                    req.user,
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> Professional:
                return authorization_code.user

        class PscOpenIDCode(OpenIDCode):
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "psc-test"}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {
                    "iss": provider.issuer,
                    "aud": [client.client_id],
                    "exp": int(time.time()) + 600,
                }

            def generate_user_info(self, user: Professional, scope: str) -> UserInfo:
                return UserInfo(user.userinfo())

        server.register_grant(CodeGrant, [PscOpenIDCode(require_nonce=False)])

        class Validator(BearerTokenValidator):
            def authenticate_token(self, token_string: str) -> Token | None:
                return provider.tokens.get(token_string)

        protect = ResourceProtector()
        protect.register_token_validator(Validator())
        base = "/auth/realms/esante-wallet"

        @app.get(base + "/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                {
                    "issuer": provider.issuer,
                    "authorization_endpoint": f"{provider.issuer}/protocol/openid-connect/auth",
                    "token_endpoint": f"{provider.issuer}/protocol/openid-connect/token",
                    "userinfo_endpoint": f"{provider.issuer}/protocol/openid-connect/userinfo",
                    "jwks_uri": f"{provider.issuer}/protocol/openid-connect/certs",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": SCOPES.split(),
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_basic",
                        "client_secret_post",
                    ],
                    "claims_supported": ["sub", "SubjectNameID", "SubjectRefPro"],
                }
            )

        @app.get(base + "/protocol/openid-connect/certs")
        def jwks() -> Any:
            return jsonify({"keys": [provider.key.as_dict(private=False)]})

        @app.get(base + "/protocol/openid-connect/auth")
        def authorize() -> Any:
            # The e-CPS authentication happens here in real life: the test's identity.
            # Like PSC, a request that does not ask for the eIDAS level is refused.
            provider.acr_values.append(request.args.get("acr_values", ""))
            if request.args.get("acr_values") != ACR:
                return jsonify({"error": "invalid_request", "error_description": "acr_values"}), 400
            provider.authorizations += 1
            return server.create_authorization_response(grant_user=provider.identity)

        @app.post(base + "/protocol/openid-connect/token")
        def token() -> Any:
            return server.create_token_response()

        @app.get(base + "/protocol/openid-connect/userinfo")
        @protect()
        def userinfo() -> Any:
            auth = request.headers.get("Authorization", "")
            found = provider.tokens.get(auth.removeprefix("Bearer ").strip())
            assert found is not None
            return jsonify(found.user.userinfo())

        return app

    def _save_token(self, token: dict[str, Any], req: Any) -> None:
        self.tokens[token["access_token"]] = Token(
            token["access_token"], token.get("scope", ""), req.user
        )


@contextmanager
def pro_sante_connect() -> Iterator[ProSanteConnect]:
    """The provider, listening on loopback for the duration."""
    import os

    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain HTTP on loopback, tests only
    provider = ProSanteConnect()
    server = make_server("127.0.0.1", provider.port, provider.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(timeout=10)
