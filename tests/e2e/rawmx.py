"""A scriptable raw SMTP peer for review tests (threads, loopback only)."""
import socket
import threading
import time


class RawMX:
    def __init__(self, ehlo=b"250-raw.test\r\n250 PIPELINING\r\n", greet_delay=0.0,
                 dot_reply=b"250 OK\r\n", rcpt=None, after_ehlo_extra=b""):
        self.ehlo = ehlo
        self.greet_delay = greet_delay
        self.dot_reply = dot_reply  # bytes or callable(n) -> bytes
        self.rcpt = rcpt or (lambda addr: b"250 OK\r\n")
        self.after_ehlo_extra = after_ehlo_extra
        self.messages = []  # (mail_from, [rcpts], data)
        self.log = []
        self.conns = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(60)
        f = c.makefile("rb")
        try:
            if self.greet_delay:
                time.sleep(self.greet_delay)
            c.sendall(b"220 raw.test ESMTP\r\n")
            mail, rcpts = None, []
            while True:
                line = f.readline()
                if not line:
                    return
                self.log.append(line)
                u = line.upper()
                if u.startswith(b"EHLO"):
                    c.sendall(self.ehlo + self.after_ehlo_extra)
                elif u.startswith(b"HELO"):
                    c.sendall(b"250 raw.test\r\n")
                elif u.startswith(b"MAIL"):
                    mail, rcpts = line[10:].split(b">")[0] + b">", []
                    c.sendall(b"250 OK\r\n")
                elif u.startswith(b"RCPT"):
                    addr = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                    r = self.rcpt(addr)
                    if r.startswith(b"2"):
                        rcpts.append(addr)
                    c.sendall(r)
                elif u.startswith(b"DATA"):
                    c.sendall(b"354 go\r\n")
                    data = b""
                    while True:
                        l = f.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                        data += l
                    self.messages.append((mail, rcpts, data))
                    r = self.dot_reply(len(self.messages)) if callable(self.dot_reply) else self.dot_reply
                    c.sendall(r)
                elif u.startswith(b"RSET"):
                    c.sendall(b"250 OK\r\n")
                elif u.startswith(b"QUIT"):
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"500 what\r\n")
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass
