"""Interop tests between faust for Rust and Python Faust on a real broker.

    python tests/interop/run.py --rust-bin target/debug/examples/interop

1. Starts the Rust agents (`interop serve`) and the Python Faust worker
   (py_worker.py); waits until both print READY.
2. Runs the Python client (py_client.py, calling the Rust agents) and the
   Rust client (`interop client`, calling the Python agents) in parallel.
3. Checks that the Rust agent reported the undecodable request with its
   topic, partition and offset.
4. Stops the servers with SIGTERM; the Rust app must stop gracefully.

Exit status 0 only if every check passed. Every wait is bounded; every
process started here is stopped before exit, even on failure or SIGTERM.

Environment: INTEROP_BROKER (default kafka://127.0.0.1:9092), INTEROP_PREFIX
(prefix of every topic, app id and reply topic; default: unique per run),
INTEROP_LOGDIR (where logs go; default target/tmp/interop/<prefix>).
"""
import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

READY_WITHIN = 120
CLIENT_WITHIN = 300
STOP_WITHIN = 30


class Proc:
    """A child process in its own session, output to <logdir>/<name>.out/.err."""

    def __init__(self, name, cmd, env, logdir):
        self.name = name
        self.out = os.path.join(logdir, name + ".out")
        self.err = os.path.join(logdir, name + ".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.p = subprocess.Popen(
                cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                cwd=logdir, env=env, start_new_session=True,
            )

    def output(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def wait_for_line(self, pattern, within):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output(), re.M)
            if m:
                return m.group(0)
            if self.p.poll() is not None:
                raise Failure(f"{self.name} exited with {self.p.returncode} before printing {pattern!r}")
            time.sleep(0.1)
        raise Failure(f"{self.name} did not print {pattern!r} within {within} s")

    def wait(self, within):
        try:
            return self.p.wait(within)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, within=STOP_WITHIN):
        """SIGTERM, then SIGKILL after `within` s. Returns the exit code, or
        None if it had to be killed."""
        if self.p.poll() is not None:
            return self.p.returncode
        self._signal(signal.SIGTERM)
        code = self.wait(within)
        if code is None:
            self._signal(signal.SIGKILL)
            self.p.wait()
        return code

    def _signal(self, sig):
        try:
            os.killpg(self.p.pid, sig)  # the child's own session/group
        except ProcessLookupError:
            pass

    def tail(self, n=40, out=True):
        for path in (self.out, self.err) if out else (self.err,):
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()[-n:]
            print(f"---- last {len(lines)} lines of {path}")
            for line in lines:
                print("    " + line)


class Failure(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rust-bin", required=True, help="the built examples/interop binary")
    args = ap.parse_args()

    prefix = os.environ.get("INTEROP_PREFIX") or f"interop-{int(time.time())}-{os.getpid()}-"
    logdir = os.environ.get("INTEROP_LOGDIR") or os.path.join(ROOT, "target", "tmp", "interop", prefix.rstrip("-"))
    os.makedirs(logdir, exist_ok=True)
    # No __pycache__ in the source tree.
    sys.dont_write_bytecode = True
    env = dict(os.environ, INTEROP_PREFIX=prefix, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("INTEROP_BROKER", "kafka://127.0.0.1:9092")
    rust = os.path.abspath(args.rust_bin)
    py = sys.executable
    print(f"interop: broker {env['INTEROP_BROKER']}, prefix {prefix}, logs in {logdir}", flush=True)

    # SIGTERM (e.g. from `timeout`) must still run the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    procs = []
    failures = []
    timings = []

    def start(name, cmd):
        p = Proc(name, cmd, env, logdir)
        procs.append(p)
        return p

    t_all = time.monotonic()
    try:
        t0 = time.monotonic()
        sys.path.insert(0, HERE)
        os.environ.update(env)
        import common  # reads INTEROP_BROKER and INTEROP_PREFIX

        asyncio.run(asyncio.wait_for(common.create_topics(
            [common.topic_name(t) for t in common.PY_AGENT_TOPICS],
            common.PY_AGENT_PARTITIONS,
        ), READY_WITHIN))
        serve = start("rs-serve", [rust, "serve"])
        worker = start("py-worker", [py, os.path.join(HERE, "py_worker.py")])
        for p in (serve, worker):
            line = p.wait_for_line(r"READY.*$", READY_WITHIN)
            print(f"interop: {p.name}: {line}", flush=True)
        timings.append(("servers ready", time.monotonic() - t0))

        t0 = time.monotonic()
        clients = [
            start("py-client", [py, os.path.join(HERE, "py_client.py")]),
            start("rs-client", [rust, "client"]),
        ]
        for c in clients:
            code = c.wait(max(1, CLIENT_WITHIN - (time.monotonic() - t0)))
            print(c.output(), end="", flush=True)
            if code is None:
                failures.append(f"{c.name} did not finish within {CLIENT_WITHIN} s")
                c.stop(5)
            elif code != 0:
                failures.append(f"{c.name} exited with {code}")
        timings.append(("clients", time.monotonic() - t0))

        # The Rust agent reported the requests it could not decode, with
        # their coordinates (one per mode).
        decode = re.findall(
            rf"^ON_ERROR agent=double error=cannot decode message {re.escape(prefix)}rs-double\[\d+\]@\d+ .*$",
            serve.output(), re.M,
        )
        if len(decode) == 4:  # two per client, one per request mode
            print(f"[driver] ok   decode errors reported with topic[partition]@offset: {decode[0]}")
        else:
            failures.append(f"want 4 decode errors reported by rs-serve, got {len(decode)}")
        wrong_ns = serve.output().count("expected a Faust record `interop.Add`, got `interop.Point`")
        if wrong_ns == 2:
            print("[driver] ok   a record of the wrong namespace is a decode error naming both")
        else:
            failures.append(f"want 2 wrong-namespace decode errors reported by rs-serve, got {wrong_ns}")

        t0 = time.monotonic()
        code = serve.stop()
        if code == 0 and "STOPPED" in serve.output():
            print(f"[driver] ok   rs-serve stopped gracefully on SIGTERM ({time.monotonic() - t0:.1f} s)")
        else:
            failures.append(f"rs-serve did not stop gracefully on SIGTERM (exit {code})")
        worker.stop()
        timings.append(("stop", time.monotonic() - t0))
    except (Failure, asyncio.TimeoutError) as e:
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        for p in procs:
            p.stop(10)

    timings.append(("total", time.monotonic() - t_all))
    print("interop: " + ", ".join(f"{what} {secs:.1f} s" for what, secs in timings))
    if failures:
        for p in procs:
            p.tail(out=p.name not in ("py-client", "rs-client"))  # printed above
        print("interop: FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
