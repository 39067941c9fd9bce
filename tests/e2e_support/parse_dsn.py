#!/usr/bin/python3
"""parse_dsn.py FILE: reads one message (a delivery status notification)
and prints what Python's email package makes of it, as JSON on stdout.

An independent reader for Posthorn's reports: the unit tests run it on the
reports dsn_build() writes, the end-to-end tests on the mail a fake MX
receives. It parses, it does not judge; callers assert on the fields.

Output keys:
  content_type, report_type       the top level (multipart/report; ...)
  headers                         From, To, Subject, Date, Message-ID,
                                  Auto-Submitted, MIME-Version (null if absent)
  parts                           content types of the top-level parts
  text                            the human-readable first part (LF lines)
  status_type                     message/delivery-status or
                                  message/global-delivery-status
  reporting_mta, arrival_date, original_envelope_id, queue_id
                                  per-message fields (queue_id is
                                  X-Posthorn-Queue-ID)
  recipients                      per recipient: final_recipient,
                                  original_recipient, action, status,
                                  diagnostic_code, remote_mta,
                                  last_attempt_date, will_retry_until
  returned                        "headers", "full" or null: the third part
                                  by its type (text/rfc822-headers and
                                  message/global-headers are headers only)
  returned_type                   its content type
  returned_has_body               whether text follows the returned headers
  returned_headers                Subject, Message-ID, From, To of the original
  defects                         what the parser complained about (all parts)
  max_line                        longest line in octets, without its CRLF
  bare_lf                         number of LF not preceded by CR
Exit status: 0 parsed, 2 usage or unreadable file.
"""
import base64
import email
import email.policy
import json
import quopri
import sys
from email.parser import HeaderParser

POLICY = email.policy.default

MESSAGE_FIELDS = {
    "reporting_mta": "Reporting-MTA",
    "arrival_date": "Arrival-Date",
    "original_envelope_id": "Original-Envelope-Id",
    "queue_id": "X-Posthorn-Queue-ID",
}
RCPT_FIELDS = {
    "final_recipient": "Final-Recipient",
    "original_recipient": "Original-Recipient",
    "action": "Action",
    "status": "Status",
    "diagnostic_code": "Diagnostic-Code",
    "remote_mta": "Remote-MTA",
    "last_attempt_date": "Last-Attempt-Date",
    "will_retry_until": "Will-Retry-Until",
}
TOP_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
               "MIME-Version"]
RETURNED_HEADERS = ["Subject", "Message-ID", "From", "To"]


def value(msg, name):
    """A header's unfolded value as str, or None."""
    v = msg.get(name)
    return None if v is None else str(v)


def raw_stats(raw):
    lines = raw.split(b"\n")
    longest = max((len(l[:-1] if l.endswith(b"\r") else l) for l in lines), default=0)
    bare = raw.count(b"\n") - raw.count(b"\r\n")
    return longest, bare


def blocks_from_text(text):
    """Header blocks separated by blank lines, each parsed as headers."""
    text = text.replace("\r\n", "\n")
    out = []
    for chunk in text.split("\n\n"):
        if chunk.strip():
            out.append(HeaderParser(policy=POLICY).parsestr(chunk + "\n"))
    return out


def raw_part_body(text, boundary, index):
    """The body of top-level part index, cut from the raw text by hand."""
    text = text.replace("\r\n", "\n")
    pieces = text.split("\n--" + boundary)
    if len(pieces) <= index + 1:
        return ""
    piece = pieces[index + 1]
    return piece.partition("\n\n")[2]


def decode_cte(body, cte):
    if cte == "base64":
        return base64.b64decode("".join(body.split())).decode("utf-8", "surrogateescape")
    data = quopri.decodestring(body.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "surrogateescape")


def status_blocks(part, raw_text, boundary):
    """The field blocks of a delivery-status part. Python splits
    message/delivery-status into blocks itself but reads any other message/*
    type, message/global-delivery-status included, as one embedded message:
    its headers are then the first block and its body holds the rest. A
    base64 or quoted-printable body (RFC 6533 allows them for the global
    type) defeats that, so it is cut from the raw text and decoded here."""
    cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte in ("base64", "quoted-printable"):
        body = raw_part_body(raw_text, boundary, 1)
        return blocks_from_text(decode_cte(body, cte))
    payload = part.get_payload()
    if isinstance(payload, str):
        return blocks_from_text(payload)
    if part.get_content_type() == "message/delivery-status":
        return list(payload)
    blocks = []
    for sub in payload:
        blocks.append(sub)
        rest = sub.get_payload()
        if isinstance(rest, str):
            blocks.extend(blocks_from_text(rest))
    return blocks


def returned_info(part):
    ctype = part.get_content_type()
    kind = {"text/rfc822-headers": "headers", "message/global-headers": "headers",
            "message/rfc822": "full", "message/global": "full"}.get(ctype)
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
        body = inner.get_payload()
        has_body = bool(body) if not isinstance(body, str) else bool(body.strip())
    else:
        text = payload if isinstance(payload, str) else ""
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        inner = HeaderParser(policy=POLICY).parsestr(head + "\n")
        has_body = bool(body.strip())
    return {
        "returned": kind,
        "returned_type": ctype,
        "returned_has_body": has_body,
        "returned_headers": {h: value(inner, h) for h in RETURNED_HEADERS},
    }


def collect_defects(msg):
    out = [type(d).__name__ for d in msg.defects]
    if msg.is_multipart():
        for p in msg.get_payload():
            out.extend(collect_defects(p))
    return out


def text_of(part):
    data = part.get_payload(decode=True) or b""
    text = data.decode(part.get_content_charset() or "us-ascii", "replace")
    return text.replace("\r\n", "\n")


def parse(raw):
    raw_text = raw.decode("utf-8", "surrogateescape")
    msg = email.message_from_string(raw_text, policy=POLICY)
    parts = msg.get_payload() if msg.is_multipart() else []
    out = {
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type"),
        "headers": {h: value(msg, h) for h in TOP_HEADERS},
        "parts": [p.get_content_type() for p in parts],
        "text": text_of(parts[0]) if parts else None,
        "status_type": parts[1].get_content_type() if len(parts) > 1 else None,
        "recipients": [],
        "returned": None,
        "returned_type": None,
        "returned_has_body": None,
        "returned_headers": None,
        "defects": collect_defects(msg),
    }
    blocks = status_blocks(parts[1], raw_text, msg.get_boundary()) if len(parts) > 1 else []
    first = blocks[0] if blocks else None
    for key, name in MESSAGE_FIELDS.items():
        out[key] = value(first, name) if first is not None else None
    for b in blocks[1:]:
        out["recipients"].append({k: value(b, n) for k, n in RCPT_FIELDS.items()})
    if len(parts) > 2:
        out.update(returned_info(parts[2]))
    out["max_line"], out["bare_lf"] = raw_stats(raw)
    return out


def main(argv):
    if len(argv) != 2:
        print("usage: parse_dsn.py FILE", file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            raw = f.read()
    except OSError as e:
        print("parse_dsn.py: %s" % e, file=sys.stderr)
        return 2
    json.dump(parse(raw), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
