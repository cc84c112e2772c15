"""An SMTP intake process of its own (``python -m appservice.mail.smtp_intake --dir D``):
in a worker deployment (``mail.inbound.processes`` ≥ 1) several of them share the SMTP
port (SO_REUSEPORT) and the spool; the appservice's poster, woken by the spool's NOTIFY,
posts what any of them accepted. A mail gets ``250`` only once committed to the spool, so
a process may die at any time: what it answered ``250`` to is delivered, the rest is
retried by the sending server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from appservice.mail.authenticate import configure_resolver
from appservice.mail.relay import open_intake
from appservice.mail.smtp_server import Handler, start_smtp
from maillon.shared.component_main import run_component
from maillon.shared.lease import instance_file
from maillon.shared.settings import Deployment

log = logging.getLogger(__name__)
COMPONENT = "mail_intake"


async def serve(deployment: Deployment) -> None:
    config = deployment.settings.mail
    _, _, router, intake = open_intake(deployment)
    configure_resolver(config.inbound.dns_servers)
    handler = Handler(intake, asyncio.Event(), config.inbound)  # the spool's NOTIFY wakes
    server = await start_smtp(config.inbound, handler, router.domain, config.max_message_bytes)
    ready = deployment.path("run", instance_file(COMPONENT, "ready"))
    ready.write_text("ready", encoding="utf-8")
    log.info("SMTP intake listening on port %s", config.inbound.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=5)
        ready.unlink(missing_ok=True)
    log.info("SMTP intake stopped (%s mails accepted)", handler.accepted)


def run(deployment: Deployment) -> None:
    asyncio.run(serve(deployment))


if __name__ == "__main__":
    run_component(COMPONENT, run)
