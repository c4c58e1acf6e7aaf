"""The job side of a rule: a thin client (stdlib only) that hands the job to a warm worker.

``scripts/rule_job.py '<job spec JSON>' <log> <threads>`` is every family, separation, merge and
crop rule's shell command. With workers on (the default; ``workers:`` in config/config.yaml) it
connects to this machine's worker for the results folder over a Unix socket, starting it if none is
running, sends the job, waits, prints the job's failure message to stderr and exits with the job's
status, so Snakemake sees the same job as before. With ``workers: false`` (or without the
environment the workflow sets) it runs the job in this process: today's path, for debugging.

The workflow passes its worker settings in the environment variable ``MIRFLOW_WORKERS`` (JSON:
``enabled``, ``dir``, ``idle_exit_s``, ``timeout_s``, ``snakemake_pid``), set when the Snakefile is
parsed, so switching workers on or off never changes a job's params (nothing reruns).
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time

ENV = "MIRFLOW_WORKERS"
#: Seconds a client waits for a freshly started worker to accept connections.
START_WAIT_S = 120.0
_SUN_PATH_MAX = 107


def lane_paths(state_dir: str, lane: str) -> dict[str, str]:
    """Socket, lock and log paths of one worker lane (``cpu`` or ``gpu``) on this host.

    The socket lives beside the lock in ``<results>/.mirflow/`` unless that path is longer than a
    Unix socket address allows (107 bytes); then it is a short name under /tmp derived from it.
    """
    host = socket.gethostname().split(".")[0] or "host"
    base = os.path.join(state_dir, f"{host}.{lane}")
    sock = base + ".sock"
    if len(os.fsencode(sock)) > _SUN_PATH_MAX - 4:
        import hashlib

        digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:20]
        sock = f"/tmp/mirflow-{os.getuid()}-{digest}.sock"
    return {"sock": sock, "lock": base + ".lock", "start_lock": base + ".start.lock", "log": base + ".log",
            "pid": base + ".pid"}


def timeout_for(conf: dict, step: str, families: list[str] | None = None) -> float | None:
    """The configured timeout of a job in seconds: ``timeout_s.<step>``; for a job of several families
    (a layout step) the sum of theirs; else ``timeout_s.default``. None: no limit."""
    table = conf.get("timeout_s") or {}
    if step in table or not families or families == [step]:
        value = table.get(step, table.get("default"))
        return float(value) if value else None
    # Every family needs a limit (a falsy one means none), else the job has none.
    limits: list[float] = [limit for name in families if (limit := table.get(name, table.get("default")))]
    return float(sum(limits)) if len(limits) == len(families) else None


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return sock
    except OSError:
        sock.close()
        return None


def _start_worker(conf: dict, lane: str, paths: dict[str, str]):
    """Start a worker detached from this job (its own session), logging to the lane's log."""
    import subprocess

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with open(paths["log"], "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mirflow.worker", "--lane", lane, "--dir", conf["dir"],
             "--idle-exit-s", str(conf.get("idle_exit_s", 300))],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True, close_fds=True)


def connect(conf: dict, lane: str) -> socket.socket | None:
    """A connection to the lane's worker, starting the worker when none answers.

    Race-free when many jobs start at once: starters serialise on a lock file, and the worker itself
    holds the lane's lock for its whole life, so a second worker never binds the socket.
    """
    paths = lane_paths(conf["dir"], lane)
    sock = _connect(paths["sock"])
    if sock is not None:
        return sock
    import fcntl

    os.makedirs(conf["dir"], exist_ok=True)
    with open(paths["start_lock"], "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(paths["sock"])
        if sock is not None:
            return sock
        proc = _start_worker(conf, lane, paths)
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            sock = _connect(paths["sock"])
            if sock is not None:
                return sock
            if proc.poll() is not None:
                # It exited: another worker holds the lane (then the socket answers next time) or it failed.
                sock = _connect(paths["sock"])
                return sock
            time.sleep(0.02)
    return None


def _lines(sock: socket.socket):
    buffer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def run_in_worker(request: dict, conf: dict) -> int | None:
    """Send the job to the worker and wait; the job's exit status, or None when no worker took it."""
    lane = request.get("lane", "cpu")
    for _attempt in range(3):
        sock = connect(conf, lane)
        if sock is None:
            return None
        with sock:
            try:
                sock.sendall(json.dumps(request).encode() + b"\n")
            except OSError as err:
                if err.errno in (errno.EPIPE, errno.ECONNRESET):
                    continue  # the worker was exiting (idle): start a new one
                raise
            accepted = False
            for message in _lines(sock):
                if "accepted" in message:
                    accepted = True
                if message.get("message"):
                    sys.stderr.write(message["message"])
                    sys.stderr.flush()
                if "exit" in message:
                    return int(message["exit"])
            if not accepted:
                continue  # closed before taking the job (an idle worker exiting): nothing ran, retry
        from .jobspec import step_of, track_of

        sys.stderr.write(f"\nmirflow: track '{track_of(request)}', step '{step_of(request)}' failed: the mirflow "
                         f"worker ({lane} lane) stopped while running it; its log: "
                         f"{lane_paths(conf['dir'], lane)['log']}. Fix: rerun; if it repeats, set "
                         "`workers: false` to run the step in its own process.\n")
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    """``rule_job.py SPEC LOG THREADS``: run one job, in a warm worker or in this process."""
    args = sys.argv[1:] if argv is None else argv
    from .jobspec import SharedParamsError, with_shared_params

    try:
        request = with_shared_params(json.loads(args[0]), os.environ)
    except SharedParamsError as err:
        sys.stderr.write(f"mirflow: {err}\n")
        return 1
    request["log"] = [args[1]] if len(args) > 1 and args[1] else []
    request["threads"] = int(args[2]) if len(args) > 2 else 1
    conf = json.loads(os.environ.get(ENV) or "null") or {}
    if conf.get("enabled") and conf.get("dir"):
        from .jobspec import families_of, step_of

        request.update(cwd=os.getcwd(), env=dict(os.environ),
                       timeout_s=timeout_for(conf, step_of(request), families_of(request)),
                       owner_pid=int(conf.get("snakemake_pid") or os.getppid()))
        status = run_in_worker(request, conf)
        if status is not None:
            return status
        sys.stderr.write("mirflow: no worker could be started; running this job in its own process.\n")
    if sys.flags.no_site:  # the shell command starts Python without site-packages (faster); the job needs them
        import site

        site.main()
    from .jobspec import execute

    return execute(request)
