"""SPEC §3: the 250 after DATA is sent only once the message is on stable
storage; a crash (kill -9) after it loses nothing."""
import smtplib
import threading

import helpers

THREADS = 10
TOTAL = 1000


def test_kill9_loses_no_acknowledged_message(server_factory):
    s = server_factory()
    acked = {}  # queue ID -> subject
    lock = threading.Lock()
    stop = threading.Event()
    errors_before_kill = []

    def worker(t):
        try:
            conn = smtplib.SMTP("127.0.0.1", s.port, timeout=30)
            conn.ehlo("load.test")
            for n in range(TOTAL // THREADS):
                if stop.is_set():
                    return
                subj = f"durable-{t}-{n}"
                code, text = conn.mail(f"load{t}@example.com")
                assert code == 250, (code, text)
                code, text = conn.rcpt(f"rcpt{n}@example.net")
                assert code == 250, (code, text)
                code, text = conn.data(helpers.message(subj, body=f"body of {subj}\r\n" * 20))
                assert code == 250, (code, text)
                with lock:
                    acked[helpers.queued_id(text)] = subj
        except (OSError, smtplib.SMTPException, AssertionError) as e:
            if not stop.is_set():
                errors_before_kill.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
    for th in threads:
        th.start()
    helpers.wait_for(lambda: len(acked) >= TOTAL * 0.4 or not any(th.is_alive() for th in threads),
                     timeout=90, interval=0.01, what="first messages acknowledged")
    stop.set()
    s.kill9()
    with lock:
        recorded = dict(acked)
    for th in threads:
        th.join(30)
    assert not errors_before_kill, errors_before_kill[:3]
    assert len(recorded) >= 100, f"only {len(recorded)} messages acknowledged"
    print(f"{len(recorded)} messages acknowledged before kill -9")

    # the CLI reads the queue of the stopped server
    q = s.queue()
    missing = [i for i in recorded if i not in q]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"

    s.restart()
    assert "event=start_error" not in s.log()
    q = s.queue()
    missing = [i for i in recorded if i not in q]
    assert not missing, f"{len(missing)} acknowledged messages lost after restart: {missing[:5]}"
    ids = sorted(recorded)
    for qid in (ids[0], ids[len(ids) // 2], ids[-1]):
        show = s.queue_show(qid)
        subj = recorded[qid]
        assert f"Subject: {subj}" in show, show
    # the restarted server accepts mail again
    qid = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"],
                                   helpers.message("after-restart"))
    assert qid in s.queue()
