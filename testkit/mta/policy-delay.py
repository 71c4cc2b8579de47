#!/usr/bin/python3
"""Postfix policy server that only waits: sleep N seconds, then answer DUNNO.

Why: to make a real Postfix delay its reply to the end of DATA (or the last
BDAT) by a known time, so a client's timeout / retry behaviour can be tested
against a real server. Used from main.cf/master.cf as
    smtpd_end_of_data_restrictions = check_policy_service unix:private/policy-delay
with a master.cf entry
    policy-delay unix - n n - 0 spawn user=nobody argv=/usr/bin/python3 .../policy-delay.py LOGFILE STATEDIR
(spawn(8) connects the policy socket to our stdin/stdout), so Postfix starts and
stops it with the instance. Stdlib only.

Delay N, in seconds (float), first found wins:
  1. the file STATEDIR/delay.<server_port>  (change at run time, no reload)
  2. the request's policy_context attribute, i.e. the master.cf override
     -o smtpd_policy_service_policy_context=12  (per smtpd service)
  3. 0
Only requests with protocol_state=END-OF-MESSAGE are delayed.
Each request is logged to LOGFILE (one line: time, state, port, delay, queue id).
"""
import os, sys, time

LOG = sys.argv[1] if len(sys.argv) > 1 else None
STATE = sys.argv[2] if len(sys.argv) > 2 else None


def log(msg):
    if not LOG:
        return
    try:
        with open(LOG, "a") as f:
            f.write("%s pid=%d %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), msg))
    except OSError:
        pass


def delay_for(req):
    port = req.get("server_port", "")
    if STATE and port:
        try:
            with open(os.path.join(STATE, "delay." + port)) as f:
                return float(f.read().strip())
        except (OSError, ValueError):
            pass
    try:
        return float(req.get("policy_context", "") or 0)
    except ValueError:
        return 0.0


def main():
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    req = {}
    while True:
        line = inp.readline()
        if not line:          # smtpd closed the connection (max_idle/max_ttl/exit)
            return
        line = line.rstrip(b"\r\n")
        if line:
            k, _, v = line.decode("utf-8", "replace").partition("=")
            req[k] = v
            continue
        state = req.get("protocol_state", "")
        d = delay_for(req) if state == "END-OF-MESSAGE" else 0.0
        log("state=%s port=%s delay=%.3f queue_id=%s rcpt_count=%s" % (
            state, req.get("server_port", ""), d, req.get("queue_id", ""),
            req.get("recipient_count", "")))
        if d > 0:
            time.sleep(d)
        out.write(b"action=DUNNO\n\n")
        out.flush()
        req = {}


if __name__ == "__main__":
    main()
