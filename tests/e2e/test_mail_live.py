"""The embedded default: the web process (`python app.py`, portal/serve.py's worker) sends the
guests' e-mail itself. A host adds a guest with an address on the appointment page of a real
server, and the invitation reaches a real SMTP server with a link that opens the guest page."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from live import CSRF_RE, WAIT, LivePortal, free_port
from smtp_inbox import Mailbox

pytestmark = [pytest.mark.live]

LINK_RE = re.compile(r"https?://[^\s\"<>]+/j/[A-Za-z0-9_\-]+")


def test_the_web_process_sends_the_invitation(live_portal_factory: Any) -> None:
    inbox = Mailbox(free_port()).start()
    try:
        live: LivePortal = live_portal_factory(env={
            "PORTAL_SMTP_HOST": "127.0.0.1", "PORTAL_SMTP_PORT": str(inbox.port),
            "PORTAL_SMTP_SECURITY": "none", "PORTAL_SMTP_FROM": "no-reply@samtale.test",
            "PORTAL_LINK_KEY": "live-link-key", "PORTAL_NOTIFY_POLL_SECONDS": "1"})
        host = live.create_host()
        consult = live.book_consult(host, guests=())
        http = live.login_session(host)
        page = http.get(f"{live.base_url}/appointments/{consult.appointment_id}", timeout=WAIT)
        match = CSRF_RE.search(page.text)
        assert page.status_code == 200 and match and 'id="mail-on"' in page.text
        added = http.post(
            f"{live.base_url}/appointments/{consult.appointment_id}/guests", timeout=WAIT,
            allow_redirects=False,
            data={"csrf_token": match.group(1), "display_name": "Pat Guest",
                  "role": "patient", "email": "pat@example.org", "message_language": "nb"})
        assert added.status_code in (200, 302), added.text[:500]

        [mail] = inbox.wait_for(1, timeout=60)
        assert mail.envelope_to == ["pat@example.org"]
        assert mail.message["Subject"] == "Invitasjon til en videotime"
        link = LINK_RE.search(mail.text)
        assert link, mail.text
        assert requests.get(link.group(0), timeout=WAIT).status_code == 200
        status = http.get(f"{live.base_url}/appointments/{consult.appointment_id}",
                          timeout=WAIT).text
        assert 'data-status="sent"' in status
    finally:
        inbox.stop()
