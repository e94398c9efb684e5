"""Walking the parts of a message: each part's content type is parsed once."""

from __future__ import annotations

import email
from email.message import EmailMessage

import pytest

from piano_abitativo.mail.mime import POLICY, content_type, is_message_part, iter_leaves

RAW = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ntesto\r\n"
    b"--B\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: c@example.org\r\nSubject: dentro\r\n\r\ncorpo\r\n"
    b"--B\r\nContent-Type: APPLICATION/vnd.openxmlformats-officedocument.spreadsheetml.sheet;"
    b' name="m.xlsx"\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--B--\r\n'
)


def test_the_content_type_is_the_libraries_and_parsed_once_per_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    msg = email.message_from_bytes(RAW, policy=POLICY)
    assert isinstance(msg, EmailMessage)
    parts = list(msg.walk())
    expected = [p.get_content_type() for p in parts]
    calls: list[int] = []
    real = EmailMessage.get_content_type

    def counted(self: EmailMessage) -> str:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(EmailMessage, "get_content_type", counted)
    for _ in range(3):
        assert [content_type(p) for p in parts] == expected
        iter_leaves(msg)
        assert [is_message_part(p) for p in parts] == [t == "message/rfc822" for t in expected]
    assert len(calls) == len(parts)
    assert expected[-1] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
