"""Writes queued messages straight into a spool, from the format in
docs/spool.md (version 1: no front), for tests that need a large queue fast: 100,000
messages take seconds, where 100,000 SMTP transactions (each fsync'd)
would take minutes. The files are what a commit writes; the server reads
them as any other (recovery checks every byte)."""
import hashlib
import os
import struct
import time

ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTVWXY"  # util.h: queue IDs


def check(data):
    """BLAKE2b-128, the spool's checksum."""
    return hashlib.blake2b(data, digest_size=16)


def queue_ids(n, start_ms=None):
    """n queue IDs in arrival order, older than anything the server makes."""
    ms = start_ms if start_ms is not None else int(time.time() * 1000) - 3_600_000
    out = []
    for i in range(n):
        v, head = ms + i // 1000, ""
        for _ in range(9):
            head = ALPHABET[v & 31] + head
            v >>= 5
        t, tail = (i % 1000) << 15 | 0x1234, ""
        for _ in range(7):
            tail = ALPHABET[t & 31] + tail
            t >>= 5
        out.append(head + tail)
    return out


def envelope(qid, created, size, sender, rcpts):
    rec = (f"PHENV 1\nid {qid}\ncreated {created}\nsize {size}\nfrom {sender}\n"
           f"account default\nclient_ip 127.0.0.1\nhelo client.test\nbody 7bit\n"
           f"smtputf8 0\nret -\nenvid -\nrcpts {len(rcpts)}\n")
    rec += "".join(f"rcpt {r} - 0 pending 0 0 -\n" for r in rcpts)
    rec = rec.encode()
    return rec + b"end " + check(rec).hexdigest().encode() + b"\n"


def header(body_len, env_len, n_rcpts):
    h = bytearray(128)
    h[0:8] = b"PHSPOOL\0"
    struct.pack_into("<IIQQQQI", h, 8, 1, 1, 128, body_len, 128 + body_len, env_len, n_rcpts)
    h[112:128] = check(bytes(h[:112])).digest()
    return bytes(h)


def message_bytes(qid, created, sender, rcpts, subject):
    body = (f"Received: by spoolgen; id {qid}\r\nFrom: <{sender}>\r\nTo: <{rcpts[0]}>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{qid}@spoolgen.test>\r\n\r\n"
            f"queued by tests/e2e/spoolgen.py\r\n").encode()
    env = envelope(qid, created, len(body), sender, rcpts)
    return header(len(body), len(env), len(rcpts)) + body + env


def make_queue(data_dir, n, rcpts_of, sender="bulk@spoolgen.test", created=None):
    """n messages in DATA_DIR/spool/queue; rcpts_of(i) gives message i's
    recipients. Returns the IDs, oldest first. No fsync: tests only."""
    qdir = os.path.join(data_dir, "spool", "queue")
    os.makedirs(qdir, exist_ok=True)
    for sub in ("tmp", "quarantine"):
        os.makedirs(os.path.join(data_dir, "spool", sub), exist_ok=True)
    created = created or int(time.time()) - 3600
    ids = queue_ids(n)
    for i, qid in enumerate(ids):
        data = message_bytes(qid, created, sender, rcpts_of(i), f"bulk {i}")
        fd = os.open(os.path.join(qdir, qid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return ids
