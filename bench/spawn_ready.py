"""Starts a server and times it from spawn until GET /readyz answers 200 (used by bench/*.sh).

    python3 bench/spawn_ready.py LOGFILE URL TIMEOUT_S NAME=VALUE... -- COMMAND ARGS...

Prints "PID READY_MS" and leaves the server running (the caller stops it by that pid). The clock
starts just before the process is spawned; /readyz is polled every millisecond over a fresh
loopback connection each time, so the figure is late by at most about one poll.
"""

import http.client
import os
import subprocess
import sys
import time


def main() -> int:
    logfile, url, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rest = sys.argv[4:]
    split = rest.index("--")
    env = dict(os.environ)
    for assignment in rest[:split]:
        name, value = assignment.split("=", 1)
        env[name] = value
    command = rest[split + 1 :]
    host, port = url.removeprefix("http://").split(":")
    with open(logfile, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"the server exited with {proc.returncode} during start-up", file=sys.stderr)
            return 1
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                ready_ms = (time.monotonic() - started) * 1000
                print(f"{proc.pid} {ready_ms:.1f}")
                return 0
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.001)
    print(f"{url}/readyz did not answer 200 within {timeout}s", file=sys.stderr)
    proc.terminate()
    return 1


if __name__ == "__main__":
    sys.exit(main())
