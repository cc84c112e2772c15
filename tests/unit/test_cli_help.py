"""`maillon --help` and its errors speak French, like the rest of the command line."""

from __future__ import annotations

import pytest

from maillon.wiring.cli import build_parser, main

ENGLISH = ("usage:", "show this help", "positional arguments", "the following arguments")


def _helps() -> list[str]:
    parser = build_parser()
    texts = [parser.format_help()]
    for argv in (["init"], ["up"], ["keys", "rotate"], ["user", "add"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, "--help"])
    return texts


def test_every_help_page_is_french(capsys: pytest.CaptureFixture[str]) -> None:
    pages = _helps()
    pages.append(capsys.readouterr().out)
    text = "\n".join(pages)
    assert text.count("Usage : maillon") == 5
    assert "affiche cette aide et quitte" in text and "--password MOT_DE_PASSE" in text
    for word in ENGLISH:
        assert word not in text, word


def test_argument_errors_are_french(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["user", "add", "marie.durand"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "maillon user add : erreur : arguments obligatoires : --dir, --password" in err
    with pytest.raises(SystemExit):
        main(["init", "--dir", "deploiement", "--server-name", "s", "--inconnu"])
    assert "arguments inconnus : --inconnu" in capsys.readouterr().err
