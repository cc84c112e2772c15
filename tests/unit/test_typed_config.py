from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from maillon.shared.settings import Secrets, Settings
from maillon.shared.typed_config import ConfigKeyError, parse
from synapse_modules.config import CareCircleConfig, parse_module_config

TOKEN = "x" * 40
KEY = "A" * 43 + "="


def test_settings_parse_with_defaults_and_are_frozen() -> None:
    settings = parse(Settings, {"server_name": "sante.test", "database_url": "sqlite:///x"})
    assert settings.dossier_api.port == 8090
    assert settings.appservice.listener.port == 8091
    assert settings.bot_user_id == "@coordination:sante.test"
    with pytest.raises(FrozenInstanceError):
        settings.server_name = "autre"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"database_url": "sqlite:///x"}, "server_name"),
        ({"server_name": 3, "database_url": "x"}, "server_name"),
        ({"server_name": "s", "database_url": "x", "bot": {"langue": "fr"}}, "bot.langue"),
        ({"server_name": "s", "database_url": "x", "bot": {"language": "de"}}, "bot.language"),
        (
            {"server_name": "s", "database_url": "x", "dossier_api": {"port": True}},
            "dossier_api.port",
        ),
        ({"server_name": "s", "database_url": "x", "dossier_api": []}, "dossier_api"),
    ],
)
def test_bad_settings_name_their_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigKeyError) as exc:
        parse(Settings, data)
    assert exc.value.key == key
    assert key in str(exc.value)


def test_secrets_validate_tokens_and_keys() -> None:
    good = {
        "as_token": TOKEN,
        "hs_token": TOKEN,
        "registration_shared_secret": TOKEN,
        "data_keys": [{"id": "k1", "key": KEY}],
    }
    assert len(parse(Secrets, good).data_keys[0].raw()) == 32
    with pytest.raises(ConfigKeyError) as short:
        parse(Secrets, {**good, "hs_token": "court"})
    assert short.value.key == "hs_token"
    with pytest.raises(ConfigKeyError) as badkey:
        parse(Secrets, {**good, "data_keys": [{"id": "k1", "key": "pas-base64!"}]})
    assert badkey.value.key == "data_keys[0].key"
    with pytest.raises(ConfigKeyError) as empty:
        parse(Secrets, {**good, "data_keys": []})
    assert empty.value.key == "data_keys"


class FakeConfigError(Exception):
    pass


def test_module_config_errors_use_synapse_error_type_and_name_key() -> None:
    ok = parse_module_config(
        {
            "appservice_user": "@maillon:s.test",
            "bot_user": "@coordination:s.test",
            "peer_servers": ["autre.example:8448"],
        },
        FakeConfigError,
    )
    assert isinstance(ok, CareCircleConfig) and ok.peer_servers == ("autre.example:8448",)
    with pytest.raises(FakeConfigError, match=r"'peer_servers'"):
        parse_module_config(
            {"appservice_user": "@m:s", "bot_user": "@c:s", "peer_servers": ["pas un serveur"]},
            FakeConfigError,
        )
    with pytest.raises(FakeConfigError, match="'bot_user'"):
        parse_module_config(
            {"appservice_user": "@m:s", "bot_user": "coordination"}, FakeConfigError
        )


@pytest.mark.parametrize(
    ("inbound", "key", "words"),
    [
        ({"require_client_certificate": True}, "mail.inbound.tls", "starttls"),
        (
            {"require_client_certificate": True, "tls": "starttls", "cert_file": "c.pem"},
            "mail.inbound.client_ca_file",
            "requis",
        ),
        ({"tls": "starttls"}, "mail.inbound.cert_file", "requis"),
        ({"trusted_networks": ["pas-un-réseau"]}, "mail.inbound.trusted_networks", "réseau"),
        ({"dns_servers": ["dns.example"]}, "mail.inbound.dns_servers", "serveur DNS"),
        ({"max_unknown_recipients": 0}, "mail.inbound.max_unknown_recipients", "au moins"),
    ],
)
def test_mail_inbound_security_settings_are_checked(
    inbound: dict[str, object], key: str, words: str
) -> None:
    data = {"server_name": "x.example", "database_url": "sqlite://", "mail": {"inbound": inbound}}
    with pytest.raises(ConfigKeyError) as caught:
        parse(Settings, data)
    assert caught.value.key == key and words in caught.value.message


def test_mail_inbound_requiring_certificates_parses() -> None:
    inbound = {
        "tls": "starttls",
        "cert_file": "c.pem",
        "client_ca_file": "ca.pem",
        "require_client_certificate": True,
        "trusted_networks": ["10.0.0.0/8"],
        "dns_servers": ["127.0.0.1:5353"],
    }
    data = {"server_name": "x.example", "database_url": "sqlite://", "mail": {"inbound": inbound}}
    settings = parse(Settings, data)
    assert settings.mail.inbound.require_client_certificate
    assert settings.mail.inbound.trusted_networks == ("10.0.0.0/8",)
