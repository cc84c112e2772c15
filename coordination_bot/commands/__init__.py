"""Command families, one module each; importing this package registers them all.
A new family is one new module here (name, aliases, usage, help, handler) and one line below."""

from coordination_bot.commands import (  # noqa: F401
    agenda,
    aide,
    alerte,
    annuaire,
    cercle,
    delegation,
    dossier,
    equipe,
    favoris,
    formulaire,
    mail,
    note,
    ppcs,
    tache,
)
