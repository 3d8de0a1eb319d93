"""Follows gatepass's revocation feed with httpx-sse, as a service in another language
would: credentials, snapshot, a live revocation, resumption with Last-Event-ID and a fresh
snapshot for a malformed one. Prints PASS/FAIL lines; exits non-zero on an exception.

usage: check_feed.py BASE CLIENT_ID CLIENT_SECRET
"""

import base64
import json
import sys
import threading

import httpx
from httpx_sse import connect_sse

base, client_id, secret = sys.argv[1:4]
stream_url = f"{base}/api/revocations/stream"


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))


def sid_of(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["sid"]


def register(client, name):
    r = client.post(f"{base}/api/register", json={"username": name, "password": "correct horse battery staple"})
    r.raise_for_status()
    return r.json()["access_token"]


def until_ready(source, on_ready=None):
    events = []
    for sse in source.iter_sse():
        events.append(sse)
        if sse.event == "ready":
            if on_ready is None:
                return events
            on_ready()
            on_ready = None
            continue
        if on_ready is None and sse.event == "revoked" and len(events) > 1 and events[-2].event == "ready":
            return events
    return events


with httpx.Client(timeout=httpx.Timeout(10.0)) as api:
    # Wrong credentials: 401 with a Basic challenge.
    r = api.get(stream_url, auth=(client_id, "wrong-secret-wrong-secret-wrong-secret"))
    check("python wrong credentials answer 401 Basic",
          r.status_code == 401 and r.headers.get("www-authenticate", "").startswith("Basic"),
          f"{r.status_code} {r.headers.get('www-authenticate')}")

    alice = register(api, "pyfeed_alice")
    bob = register(api, "pyfeed_bob")
    api.post(f"{base}/api/logout", headers={"Authorization": f"Bearer {alice}"}).raise_for_status()

    feed = httpx.Client(auth=(client_id, secret), timeout=httpx.Timeout(10.0, read=30.0))

    def logout_bob():
        threading.Thread(
            target=lambda: api.post(f"{base}/api/logout", headers={"Authorization": f"Bearer {bob}"}).raise_for_status()
        ).start()

    # Snapshot, ready, then a live revocation made after connecting.
    with connect_sse(feed, "GET", stream_url) as source:
        check("python stream is text/event-stream",
              source.response.headers["content-type"].startswith("text/event-stream"))
        events = until_ready(source, on_ready=logout_bob)
    revoked = [e for e in events if e.event == "revoked"]
    ready = next(e for e in events if e.event == "ready")
    check("python snapshot carries the earlier logout", revoked and revoked[0].json()["sid"] == sid_of(alice),
          str([e.data for e in revoked]))
    check("python ready marks a fresh snapshot", ready.json()["snapshot"] is True, ready.data)
    check("python live event for a logout made while connected", revoked[-1].json()["sid"] == sid_of(bob),
          revoked[-1].data)
    ids = [int(e.id) for e in revoked]
    check("python event ids increase", ids == sorted(ids) and len(set(ids)) == len(ids), str(ids))

    # Resume after the first event: exactly the later one, then ready (not a snapshot).
    with connect_sse(feed, "GET", stream_url, headers={"Last-Event-ID": revoked[0].id}) as source:
        resumed = until_ready(source)
    sids = [e.json()["sid"] for e in resumed if e.event == "revoked"]
    check("python Last-Event-ID resumes after it", sids == [sid_of(bob)], str(sids))
    check("python resumption is no snapshot", resumed[-1].json()["snapshot"] is False, resumed[-1].data)

    # A malformed Last-Event-ID gets a fresh snapshot, not an error.
    with connect_sse(feed, "GET", stream_url, headers={"Last-Event-ID": "not-a-number"}) as source:
        fresh = until_ready(source)
    check("python malformed Last-Event-ID gets a fresh snapshot",
          fresh[-1].json()["snapshot"] is True and len([e for e in fresh if e.event == "revoked"]) == 2,
          str([e.data for e in fresh]))
    feed.close()
