"""Mail settings and message texts: file ← environment, no password in files, editable texts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.cli.commands import main
from piano_abitativo.core import raccolta as rc
from piano_abitativo.mail import outbox, settings, texts

from .mailraccolta import configure, make_raccolta


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return make_raccolta(tmp_path)


def test_crea_writes_a_commented_posta_section_and_the_message_texts(racc: rc.Raccolta) -> None:
    """A new raccolta has [posta] with every key commented, and messaggi/*.txt to edit."""
    text = racc.config_path.read_text(encoding="utf-8")
    assert "\n# [posta]\n" in text and "\n[posta]" not in text
    for key in settings.ENV_KEYS:
        assert f"\n# {key} = " in text
    assert not [ln for ln in text.splitlines() if ln.lstrip("# ").startswith("password")]
    assert sorted(p.name for p in texts.messages_dir(racc.path).iterdir()) == [
        "esito.txt",
        "invio.txt",
        "manca_file.txt",
        "sollecito.txt",
    ]
    assert settings.load_settings(racc, env={}) == settings.MailSettings(
        mittente="protocollo@pec.comune.crema.example"
    )  # the capofila's PEC


def test_sender_defaults_to_the_mailbox_user_then_to_the_capofila(racc: rc.Raccolta) -> None:
    """No mittente: utente when it is an address, else the capofila's address."""
    env = {"PIANO_ABITATIVO_UTENTE": "casella@pec.example.org"}
    assert settings.load_settings(racc, env=env).mittente == "casella@pec.example.org"
    env = {"PIANO_ABITATIVO_UTENTE": "casella"}
    assert settings.load_settings(racc, env=env).mittente == "protocollo@pec.comune.crema.example"
    env["PIANO_ABITATIVO_MITTENTE"] = "ufficio.casa@pec.example.org"
    assert settings.load_settings(racc, env=env).mittente == "ufficio.casa@pec.example.org"


def test_environment_overrides_the_file_and_ports_follow_the_security(racc: rc.Raccolta) -> None:
    """PIANO_ABITATIVO_* wins over raccolta.toml; a port not given follows ssl/starttls."""
    r = configure(
        racc,
        smtp_host="smtp.file.example",
        smtp_sicurezza="starttls",
        imap_host="imap.file.example",
        utente="file@example.org",
    )
    env = {
        "PIANO_ABITATIVO_SMTP_HOST": "smtp.env.example",
        "PIANO_ABITATIVO_IMAP_SICUREZZA": "nessuna",
        "PIANO_ABITATIVO_IMAP_PORT": "1143",
        "PIANO_ABITATIVO_MITTENTE": "capofila@env.example",
    }
    s = settings.load_settings(r, env=env)
    assert (s.smtp_host, s.smtp_port, s.smtp_sicurezza) == ("smtp.env.example", 587, "starttls")
    assert (s.imap_host, s.imap_port, s.imap_sicurezza) == ("imap.file.example", 1143, "nessuna")
    assert (s.utente, s.mittente) == ("file@example.org", "capofila@env.example")
    assert settings.load_settings(r, env={}).smtp_host == "smtp.file.example"


@pytest.mark.parametrize(
    ("where", "key", "value", "message"),
    [
        (
            "file",
            "smtp_sicurezza",
            "tls",
            "raccolta.toml, [posta] smtp_sicurezza: «tls» non "
            "valido (ammessi: ssl, starttls, nessuna)",
        ),
        (
            "env",
            "imap_port",
            "novecento",
            "variabile d'ambiente PIANO_ABITATIVO_IMAP_PORT: «novecento» non valido",
        ),
        ("file", "mittente", "capofila", "«capofila» non è un indirizzo di posta"),
        ("file", "server", "x", "chiavi sconosciute: server"),
    ],
)
def test_a_wrong_setting_is_named_with_where_it_comes_from(
    racc: rc.Raccolta, where: str, key: str, value: str, message: str
) -> None:
    """Each error says which file or variable holds the wrong value."""
    env: dict[str, str] = {}
    r = racc
    if where == "file":
        r = configure(racc, **{key: value})
    else:
        env[f"PIANO_ABITATIVO_{key.upper()}"] = value
    with pytest.raises(settings.MailError, match=re.escape(message)):
        settings.load_settings(r, env=env)


def test_a_password_in_raccolta_toml_is_refused(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """`password = ...` in [posta] stops every command with an Italian error saying to
    remove it; the password is never read from there."""
    with open(racc.config_path, "a", encoding="utf-8") as fh:
        fh.write('[posta]\npassword = "segreta"\n')
    with pytest.raises(rc.RaccoltaError, match="la password non va mai scritta nel file"):
        rc.load(racc.path)
    assert main(["stato", str(racc.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Errore: ") and "Cancellare quella riga" in err


def test_password_comes_from_the_environment_else_the_keyring(
    racc: rc.Raccolta, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIANO_ABITATIVO_PASSWORD first, then keyring.get_password("piano-abitativo", utente)."""
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        store: dict[tuple[str, str], str] = {}  # noqa: RUF012

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        keyring.set_password("piano-abitativo", "capofila@example.org", "dal-portachiavi")
        s = settings.load_settings(configure(racc, utente="capofila@example.org"), env={})
        assert settings.password(s, env={}) == "dal-portachiavi"
        assert settings.password(s, env={settings.PASSWORD_ENV: "da-variabile"}) == "da-variabile"
        assert settings.password(settings.MailSettings(utente="altro"), env={}) is None
    finally:
        keyring.set_keyring(previous)


def _values(**extra: str) -> dict[str, Any]:
    return {"ente": "Comune di Crema", "anno": "2026", **extra}


def test_edited_message_text_is_used_with_its_placeholders(racc: rc.Raccolta) -> None:
    """messaggi/invio.txt edited by the capofila: comments dropped, placeholders filled."""
    (texts.messages_dir(racc.path) / "invio.txt").write_text(
        "# commento\nOggetto: Dati {anno} – {ente}\n\nCari colleghi di {ente},\n"
        "graffe letterali: {{così}}.\n",
        encoding="utf-8",
    )
    subject, body = texts.render_message(racc, "invio", _values())
    assert subject == "Dati 2026 – Comune di Crema"
    assert body == "Cari colleghi di Comune di Crema,\ngraffe letterali: {così}.\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Oggetto: x {comune}\n\ntesto", r"segnaposto \{comune\} sconosciuto"),
        ("Oggetto: x\n\ntesto {ente", "parentesi graffe non valide"),
        ("Gentili colleghi\n", "la prima riga .* deve essere «Oggetto: …»"),
    ],
)
def test_a_broken_message_text_is_named_with_its_file(
    racc: rc.Raccolta, text: str, message: str
) -> None:
    """A wrong placeholder or a missing subject line: the error names messaggi/esito.txt."""
    path = texts.messages_dir(racc.path) / "esito.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(settings.MailError, match=message) as info:
        texts.render_message(racc, "esito", _values())
    assert str(info.value).startswith(str(path))


def test_missing_message_texts_fall_back_to_the_defaults(racc: rc.Raccolta) -> None:
    """A raccolta made before messaggi/ existed still gets complete Italian messages."""
    for p in texts.messages_dir(racc.path).iterdir():
        p.unlink()
    plan = outbox.plan_invio(racc, enti=["019035"])
    [msg] = plan.messages
    assert msg.oggetto == (
        "Piano annuale dell'offerta abitativa 2026 - richiesta dati - Comune di Crema"
    )
    assert "entro il 15/12/2025" in msg.corpo and "Ufficio Casa" in msg.corpo


def test_enti_without_an_address_are_left_out_with_the_reason(tmp_path: Path) -> None:
    """An ente with neither pec nor email is listed as excluded, not silently skipped."""
    r = make_raccolta(
        tmp_path,
        enti_csv=(
            "codice,tipo,denominazione,provincia,codice_catastale,capofila,email,pec\n"
            "019035,COMUNE,Crema,CR,D142,SI,,crema@pec.example\n"
            "019002,COMUNE,Agnadello,CR,A076,,,\n"
        ),
    )
    plan = outbox.plan_invio(r)
    assert [m.destinatario for m in plan.messages] == ["crema@pec.example"]
    assert plan.esclusi == [
        ("Comune di Agnadello", "manca l'indirizzo (colonne pec o email dell'elenco enti)")
    ]
