#!/usr/bin/env python3
"""A real SMTP server for the integration tests: `smtp_capture.py PORT DIR`.

Listens on 127.0.0.1:PORT (aiosmtpd, a full SMTP dialogue) and writes every message it
accepts to DIR as one JSON file (recipients, headers, decoded text and HTML parts), so the
tests can read links out of mails. Prints "ready" once it accepts connections.
"""
import email
import email.policy
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Capture:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_subtype()] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "text": parts.get("plain", ""),
            "html": parts.get("html", ""),
        }
        name = f"{time.time_ns()}-{os.getpid()}"
        tmp = os.path.join(self.out, name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out, name + ".json"))
        return "250 OK"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Capture(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
