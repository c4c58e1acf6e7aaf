"""The warm worker: one long-lived process per host, results folder and lane, serving rule jobs.

Two lanes (README, "Architecture: warm workers"):

- ``cpu``: a preloaded fork server. The parent imports the libraries of each step once and builds
  the step's CPU models (Basic Pitch, madmom's networks) once, then forks one child per job; the
  child inherits all of it, runs the job and exits. A segfault, an out-of-memory kill or a timeout
  kills only that child; the parent reports it as the job's failure (track, step, reason) and
  serves the next job.
- ``gpu``: one persistent executor process that runs the GPU steps one at a time and keeps their
  models loaded (CUDA cannot be used in a forked child of a process that initialised it). The light
  parent forks it before anything heavy is imported, and forks a fresh one when it dies or is
  stopped for a timeout. Snakemake's ``gpu=1`` resource still bounds how many GPU jobs wait at once.

The worker exits when no job is running and either every Snakemake process that sent it jobs has
exited (checked twice a second) or it has been idle for ``--idle-exit-s`` seconds. Run as
``python -m mirflow.worker --lane cpu --dir <results>/.mirflow``; jobs start it (mirflow.client).
"""
from __future__ import annotations

import argparse
import faulthandler
import fcntl
import io
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, cast

from .client import lane_paths
from .jobspec import FAILURE_MARKER, execute, families_of, step_of, track_of

log = logging.getLogger("mirflow.worker")
TICK_S = 0.5

#: Modules a step's jobs import, imported once in the CPU lane's parent before the first fork.
BASE_MODULES = ("numpy", "scipy.signal", "soundfile", "yaml", "mirflow.audio", "mirflow.runner",
                "mirflow.families", "mirflow.merge", "mirflow.catalogue")
_RHYTHM = ("mirflow.features.rhythm", "mirflow.features.rhythm_detectors", "madmom.features.downbeats",
           "madmom.features.beats", "madmom.features.onsets", "madmom.features.tempo", "essentia.standard")
_HARMONY = ("mirflow.features.harmony", "essentia.standard", "madmom.features.key", "librosa")
STEP_MODULES: dict[str, tuple[str, ...]] = {
    "loudness": ("mirflow.features.loudness",), "spectral": ("mirflow.features.spectral",),
    "multiband_rms": ("mirflow.features.multiband",),
    "rhythm": _RHYTHM, "rhythm_stems": _RHYTHM, "harmony": _HARMONY, "harmony_stems": _HARMONY,
    "timbral": ("mirflow.features.timbral", "timbral_models", "librosa"),
    "descriptors": ("mirflow.features.descriptors", "essentia.standard"),
    "metadata": ("mirflow.metadata", "mutagen"),
    "bass_transcription": ("mirflow.transcription.bass", "onnxruntime", "mido"),
    "crops": ("mirflow.crop_job", "mirflow.crops", "mirflow.exports.audiocraft", *_RHYTHM, *_HARMONY,
              "mirflow.features.loudness", "mirflow.features.spectral", "mirflow.features.multiband",
              "mirflow.features.descriptors"),
}
for _name in ("loudness", "spectral", "multiband_rms"):
    STEP_MODULES[f"{_name}_stems"] = STEP_MODULES[_name]


def warm_models(request: dict[str, Any]) -> None:
    """Build the CPU models a job's families will use, in the long-lived parent (once each)."""
    for step in families_of(request):
        _warm_step(step, request)


def _warm_step(step: str, request: dict[str, Any]) -> None:
    from .registry import FAMILIES
    from .runner import library_versions

    if step in FAMILIES:
        library_versions(FAMILIES[step].libraries)  # cached per process: every later fork inherits it
    if step in ("rhythm", "rhythm_stems", "crops"):
        from .features import rhythm_detectors as det

        det._onset_cnn()
        if step == "rhythm":
            det._downbeat_rnn()
    if step in ("harmony", "crops"):
        from .features.harmony import madmom_key_processor

        madmom_key_processor()
    if step == "timbral":  # numba compiles it (or reads its disk cache) once; every fork inherits it
        from .compat.timbral import _compiled_envelope_kernel

        _compiled_envelope_kernel()
    if step == "bass_transcription" and int(request.get("threads", 1)) == 1:
        # onnxruntime sessions with more than one thread own a thread pool, which a fork does not copy.
        from .families import load_bass_model

        load_bass_model(1)


class _Tee(io.TextIOBase):
    """stderr of a job: kept for the job's own stderr and also written to the worker's log."""

    def __init__(self, stream):
        self.stream, self.buffer_text = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.buffer_text.write(text)
        self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def run_request(request: dict[str, Any]) -> tuple[int, str]:
    """Run a job in this process as the client would have (its cwd and environment); (status, stderr)."""
    os.chdir(request.get("cwd") or os.getcwd())
    if request.get("env"):
        os.environ.clear()
        os.environ.update(request["env"])
    real, tee = sys.stderr, _Tee(sys.stderr)
    sys.stderr = tee
    try:
        code = execute(request)
    except BaseException:  # a bug outside job_logging: still one message, never a hang
        tee.write(f"\nmirflow: track '{track_of(request)}', step '{step_of(request)}' failed in the worker:\n"
                  f"{traceback.format_exc()}")
        code = 1
    finally:
        sys.stderr = real
        real.flush()
    text = tee.buffer_text.getvalue()
    # The job's stderr goes back to its client; progress bars can be long, the message is at the end.
    return code, text if len(text) <= 65536 else "[... earlier output in the worker's log ...]\n" + text[-65536:]


@dataclass
class Job:
    conn: socket.socket
    request: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    pid: int | None = None
    result_fd: int | None = None
    result: bytes = b""

    @property
    def deadline(self) -> float | None:
        timeout = self.request.get("timeout_s")
        return self.started + float(timeout) if timeout else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_SIGNAL_HINTS = {
    "SIGKILL": "killed from outside: most often the kernel's out-of-memory killer (see `dmesg`)",
    "SIGSEGV": "a crash (segmentation fault) in native code",
    "SIGABRT": "aborted in native code",
    "SIGBUS": "a crash (bus error) in native code",
}


class Worker:
    def __init__(self, lane: str, state_dir: str, idle_exit_s: float):
        self.lane, self.state_dir, self.idle_exit_s = lane, state_dir, idle_exit_s
        self.paths = lane_paths(state_dir, lane)
        self.sel = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}          # key: result fd
        self.queue: list[Job] = []               # gpu lane: waiting for the executor
        self.owners: set[int] = set()
        self.last_busy = time.monotonic()
        self.warmed: set[str] = set()
        self.executor: tuple[int, int, int] | None = None  # gpu lane: (pid, request fd, result fd)
        self.running_gpu: Job | None = None
        self.listener: socket.socket | None = None
        self.done = 0

    # ---------------------------------------------------------------- lifecycle
    def bind(self) -> bool:
        """Take the lane's lock (one worker per lane) and listen; False when another worker holds it."""
        self.lock = open(self.paths["lock"], "a")
        deadline = time.monotonic() + 15
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                # Held: by a live worker (its socket answers: leave it the lane) or by one that is exiting.
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(self.paths["sock"])
                    return False
                except OSError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.05)
                finally:
                    probe.close()
        if os.path.exists(self.paths["sock"]):
            os.unlink(self.paths["sock"])  # stale: its worker is gone (we hold the lock)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.paths["sock"])
        os.chmod(self.paths["sock"], 0o600)
        self.listener.listen(256)
        with open(self.paths["pid"], "w") as handle:
            handle.write(f"{os.getpid()}\n")
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        return True

    def preload(self) -> None:
        started = time.perf_counter()
        for module in BASE_MODULES:
            self._import(module)
        log.info("preloaded %s in %.2f s", ", ".join(BASE_MODULES), time.perf_counter() - started)

    def _import(self, module: str) -> None:
        import importlib

        try:
            importlib.import_module(module)
        except Exception as err:  # the job itself reports a missing library properly
            log.warning("could not preload %s: %s", module, err)

    def shutdown(self) -> None:
        if self.listener is not None:
            self.sel.unregister(self.listener)
            self.listener.close()
            self.listener = None
            for path in (self.paths["sock"], self.paths["pid"]):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        for job in list(self.jobs.values()):
            if job.pid:
                _kill(job.pid)
        if self.executor:
            _kill(self.executor[0])
        log.info("exiting after %d job(s)", self.done)

    def serve(self) -> None:
        while True:
            for key, _events in self.sel.select(timeout=TICK_S):
                if key.data == "accept":
                    self._accept()
                elif key.data == "client":
                    # only client connections are registered with data "client"
                    self._client_readable(cast(socket.socket, key.fileobj))
                else:
                    self._result_readable(key.fd)
            self._check_deadlines()
            if self._should_exit():
                return

    def _busy(self) -> bool:
        return bool(self.jobs or self.queue or self.running_gpu)

    def _should_exit(self) -> bool:
        if self._busy():
            self.last_busy = time.monotonic()
            return False
        self.owners = {pid for pid in self.owners if _alive(pid)}
        if self.done and not self.owners:
            log.info("every Snakemake process that sent jobs has exited")
            return True
        if time.monotonic() - self.last_busy > self.idle_exit_s:
            log.info("idle for %.0f s", self.idle_exit_s)
            return True
        return False

    # ---------------------------------------------------------------- requests
    def _accept(self) -> None:
        assert self.listener is not None, "accept is registered only while listening"
        conn, _ = self.listener.accept()
        try:
            conn.settimeout(10)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("client closed before sending a job")
                data += chunk
            request = json.loads(data)
            conn.settimeout(None)
            conn.sendall(b'{"accepted": true}\n')
        except (OSError, ValueError, ConnectionError) as err:
            log.warning("dropped a connection: %s", err)
            conn.close()
            return
        if request.get("owner_pid"):
            self.owners.add(int(request["owner_pid"]))
        job = Job(conn, request)
        log.info("job track=%r step=%s", track_of(request), step_of(request))
        self.sel.register(conn, selectors.EVENT_READ, "client")
        if self.lane == "cpu":
            self._fork_job(job)
        else:
            self.queue.append(job)
            self._next_gpu_job()

    def _fork_job(self, job: Job) -> None:
        step = step_of(job.request)
        for family in families_of(job.request):
            if family not in self.warmed:
                for module in STEP_MODULES.get(family, ()):
                    self._import(module)
                self.warmed.add(family)
        try:
            warm_models(job.request)
        except Exception as err:  # the job loads (and reports) it itself
            log.warning("could not preload the models of %s: %s", step, err)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the job's own process
            os.close(read_fd)
            code = 1
            try:
                self._close_inherited(keep=job.conn)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                code, text = run_request(job.request)
                _write_all(write_fd, json.dumps({"exit": code, "message": text}).encode())
            finally:
                os._exit(code)
        os.close(write_fd)
        job.pid, job.result_fd = pid, read_fd
        self.jobs[read_fd] = job
        self.sel.register(read_fd, selectors.EVENT_READ, "result")

    def _close_inherited(self, keep: socket.socket | None = None) -> None:
        if self.listener is not None:
            self.listener.close()
        for other in list(self.jobs.values()) + self.queue:
            if other.conn is not keep:
                other.conn.close()
            if other.result_fd is not None:
                os.close(other.result_fd)
        self.sel.close()

    def _next_gpu_job(self) -> None:
        if self.running_gpu is not None or not self.queue:
            return
        job = self.queue.pop(0)
        if self.executor is None:
            self.executor = self._start_executor()
        pid, request_fd, result_fd = self.executor
        job.pid, job.result_fd, job.started = pid, result_fd, time.monotonic()
        self.running_gpu = job
        self.jobs[result_fd] = job
        _write_all(request_fd, json.dumps(job.request).encode() + b"\n")

    def _start_executor(self) -> tuple[int, int, int]:
        """Fork the GPU lane's executor; (pid, request fd, result fd)."""
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(req_w)
            os.close(res_r)
            try:
                self._close_inherited()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _executor_loop(req_r, res_w)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(res_w)
        self.sel.register(res_r, selectors.EVENT_READ, "result")
        log.info("started the GPU-lane executor pid=%d", pid)
        return pid, req_w, res_r

    def _result_readable(self, fd: int) -> None:
        job = self.jobs.get(fd)
        chunk = os.read(fd, 1 << 20)
        if job is None:
            if not chunk and self.executor and fd == self.executor[2]:
                self._executor_died(None)  # died between jobs: the next job starts a new one
            return
        if self.lane == "gpu":
            if chunk:
                job.result += chunk
                if not job.result.endswith(b"\n"):
                    return
                self._finish(job, json.loads(job.result))
                return
            self._executor_died(job)
            return
        if chunk:
            job.result += chunk
            return
        self.sel.unregister(fd)
        os.close(fd)
        assert job.pid is not None, "a cpu-lane job's result pipe is registered after its fork"
        _, status = os.waitpid(job.pid, 0)
        if os.WIFSIGNALED(status):
            self._fail(job, f"the computation was {_describe_signal(os.WTERMSIG(status))}")
            return
        try:
            reply = json.loads(job.result)
        except ValueError:
            reply = {"exit": os.WEXITSTATUS(status) or 1, "message": ""}
        self._finish(job, reply)

    def _executor_died(self, job: Job | None) -> None:
        assert self.executor is not None, "called only for the executor's result pipe"
        pid, request_fd, result_fd = self.executor
        self.sel.unregister(result_fd)
        os.close(result_fd)
        os.close(request_fd)
        self.executor = None
        _, status = os.waitpid(pid, 0)
        if job is None:
            log.warning("the GPU-lane executor pid=%d ended between jobs (status %d)", pid, status)
            return
        reason = (_describe_signal(os.WTERMSIG(status)) if os.WIFSIGNALED(status)
                  else f"ended with status {os.WEXITSTATUS(status)}")
        self._fail(job, f"the GPU-lane process running it was {reason} (a new one serves the next job)"
                   if os.WIFSIGNALED(status) else f"the GPU-lane process running it {reason}")

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.deadline is not None and now > job.deadline and job.pid:
                timeout = job.request["timeout_s"]
                log.warning("timeout: track=%r step=%s after %s s", track_of(job.request), step_of(job.request),
                            timeout)
                job.request["_timed_out"] = timeout
                _kill(job.pid)

    def _client_readable(self, conn: socket.socket) -> None:
        """A client closed its end while waiting: Snakemake cancelled the job, so stop it."""
        try:
            data = conn.recv(1)
        except OSError:
            data = b""
        if data:
            return
        self.sel.unregister(conn)
        for job in list(self.jobs.values()):
            if job.conn is conn and job.pid:
                log.info("job cancelled by its client: track=%r step=%s", track_of(job.request), step_of(job.request))
                job.request["_cancelled"] = True
                _kill(job.pid)
        for job in list(self.queue):
            if job.conn is conn:
                self.queue.remove(job)
                conn.close()

    def _fail(self, job: Job, reason: str) -> None:
        if job.request.get("_timed_out"):
            reason = (f"it ran longer than its timeout of {job.request['_timed_out']} s and was stopped. Fix: raise "
                      f"workers.timeout_s.{step_of(job.request)} in the config for long tracks")
        elif job.request.get("_cancelled"):
            reason = "cancelled (Snakemake stopped the job)"
        track, step = track_of(job.request), step_of(job.request)
        logs = job.request.get("log") or []
        message = f"\nmirflow: track '{track}', step '{step}' failed: {reason}\n" + (
            f"  log: {logs[0]}\n" if logs else "")
        for path in logs:
            try:
                with open(os.path.join(job.request.get("cwd", ""), path), "a", encoding="utf-8") as handle:
                    handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR {FAILURE_MARKER} track={track!r} "
                                 f"step={step} reason={reason}\n")
            except OSError as err:  # the reason still reaches the job's stderr through the reply
                log.warning("could not append the failure to the job log %s: %s", path, err)
        log.warning("failed: track=%r step=%s: %s", track, step, reason)
        self._finish(job, {"exit": 1, "message": message})

    def _finish(self, job: Job, reply: dict[str, Any]) -> None:
        if job.result_fd is not None:  # a job still queued for the GPU lane has no result pipe yet
            self.jobs.pop(job.result_fd, None)
        if self.running_gpu is job:
            self.running_gpu = None
        self.done += 1
        log.info("done track=%r step=%s exit=%s in %.3f s", track_of(job.request), step_of(job.request),
                 reply.get("exit"), time.monotonic() - job.started)
        try:
            self.sel.unregister(job.conn)
        except (KeyError, ValueError):
            pass
        try:
            job.conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError as err:  # the job's client is gone (killed); Snakemake records that job's failure itself
            log.warning("could not reply to the client of track=%r step=%s: %s", track_of(job.request),
                        step_of(job.request), err)
        job.conn.close()
        if self.lane == "gpu":
            self._next_gpu_job()


def _describe_signal(number: int) -> str:
    name = _signal_name(number)
    hint = _SIGNAL_HINTS.get(name)
    return f"killed by {name}" + (f" ({hint})" if hint else "")


def _executor_loop(request_fd: int, result_fd: int) -> None:
    """The GPU lane's persistent process: run jobs one after another, keeping models loaded."""
    with os.fdopen(request_fd, "rb") as requests:
        for line in requests:
            code, text = run_request(json.loads(line))
            _write_all(result_fd, json.dumps({"exit": code, "message": text}).encode() + b"\n")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mirflow.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--lane", choices=("cpu", "gpu"), required=True)
    parser.add_argument("--dir", required=True, help="state folder (<results>/.mirflow)")
    parser.add_argument("--idle-exit-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s {args.lane} %(process)d "
                        "%(levelname)s %(name)s %(message)s")
    faulthandler.enable()  # a crashing job leaves its Python stack in the worker's log
    os.makedirs(args.dir, exist_ok=True)
    worker = Worker(args.lane, os.path.abspath(args.dir), args.idle_exit_s)
    if not worker.bind():
        return 0  # another worker serves this lane
    log.info("listening on %s (lane %s, pid %d)", worker.paths["sock"], args.lane, os.getpid())

    def stop(_signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        if args.lane == "cpu":
            worker.preload()
        worker.serve()
    finally:
        worker.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
