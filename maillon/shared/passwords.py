"""Password strength, estimated with zxcvbn (a maintained estimator of how many guesses an
attacker needs), so that weak passwords are refused with a reason a person understands."""

from __future__ import annotations

from collections.abc import Sequence

from zxcvbn import zxcvbn

MIN_SCORE = 3  # zxcvbn's 0-4 scale: 3 = "safely unguessable" against online attacks
MAX_LENGTH = 256


def weakness(password: str, user_inputs: Sequence[str] = ()) -> str | None:
    """None if the password is strong enough, else why not (French)."""
    if len(password) > MAX_LENGTH:
        return f"mot de passe trop long ({MAX_LENGTH} caractères au plus)"
    result = zxcvbn(password, user_inputs=[w for w in user_inputs if w])
    if int(result["score"]) >= MIN_SCORE:
        return None
    return (
        "mot de passe trop faible : il serait deviné rapidement "
        "(mot courant, nom, suite de caractères ou trop court). "
        "Choisissez au moins 12 caractères, par exemple quatre mots sans rapport entre eux."
    )
