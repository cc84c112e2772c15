"""One user-id check (maillon.shared.circle) behind the dossier API's schemas, the bot's
commands and the Synapse module's configuration: they accept and refuse the same ids."""

from __future__ import annotations

import pytest
from jsonschema import Draft7Validator

from coordination_bot.core import USER_ID
from dossier_api.http.schemas import USER_ID as USER_ID_SCHEMA
from maillon.shared.care_circle_config import _servers, _user_id
from maillon.shared.circle import SERVER_NAME_RE, USER_ID_RE

ACCEPTED = ["@ide.martin:sante.test", "@dr_house=1/x+y-z:chu.example:8448", "@a:localhost"]
REFUSED = ["ide:sante.test", "@IDE:sante.test", "@ide", "@ide:", "@ide :sante.test", ""]


@pytest.mark.parametrize("user_id", ACCEPTED + REFUSED)
def test_the_api_the_bot_and_the_module_agree(user_id: str) -> None:
    expected = user_id in ACCEPTED
    assert bool(USER_ID_RE.match(user_id)) is expected
    assert bool(USER_ID.match(user_id)) is expected
    assert Draft7Validator(USER_ID_SCHEMA).is_valid(user_id) is expected
    assert (_user_id(user_id) is None) is expected


def test_server_names_of_init_and_of_the_module_are_one_check() -> None:
    assert SERVER_NAME_RE.match("sante.example:8448") and not SERVER_NAME_RE.match("a b")
    assert _servers(("sante.example:8448",)) is None
    assert _servers(("a b",)) == "nom de serveur invalide : 'a b'"
