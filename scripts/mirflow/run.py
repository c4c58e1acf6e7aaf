"""``python -m mirflow.run``: what ``make run`` calls. Runs Snakemake with a quiet console and a summary.

- Console: the start-up report, one progress bar with ETA, a line per finished track and per failed job, then
  the summary (:func:`mirflow.summary.render_summary`). Snakemake's full output goes to
  ``<results>/logs/snakemake/<time>.log``; ``-v`` prints it on the console as well (no bar).
- Failures: read from Snakemake's own output (:mod:`mirflow.runlog`), so a job killed by a signal is listed
  like one that raised; the record is ``<results>/logs/run_record.json`` (``make summary`` reads it).
- Stale lock: after a kill -9 or a power loss, the lock Snakemake left in ``.snakemake/locks`` is removed
  when no Snakemake process runs in this folder (never while one does); ``rerun-incomplete`` (profile)
  redoes the outputs the killed jobs left incomplete.
- Batches: a collection larger than ``--batch-size`` tracks is processed as ``n`` Snakemake invocations over
  ``--config batch=i/n`` (each builds the DAG of its tracks only), then one pass for the corpus outputs. An
  interrupted split run resumes at its first unfinished batch.

Every other argument goes to Snakemake unchanged (``--cores``, ``--configfile``, ``--config k=v``...).
The exit code is non-zero when any job or invocation failed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .batches import batch_count
from .jsonio import read_json, write_json_atomic
from .layout import TRACK_INFO, is_shared_group
from .runlog import (
    SnakemakeLogParser,
    add_cluster_failures,
    attempted_logs,
    audio_seconds,
    finished_tracks,
    record_entry,
    track_from_log,
    update_record,
)
from .summary import render_summary

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
CORPUS_RULES_FILE = REPO / "workflow" / "rules" / "corpus.smk"
DEFAULT_BATCH_SIZE = 5000
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg", "opus", "m4a", "aiff", "aif")
_STARTUP_END = ("Assuming ", "Building DAG", "SNAKEMAKE", "Job stats", "Nothing to be done")


# ---------------------------------------------------------------------------------------------------------------
# Arguments: the driver's own options, Snakemake's options, and one merged --config list.

def split_config(args: list[str]) -> tuple[list[str], list[str]]:
    """Snakemake arguments without their ``--config``/``-C`` lists, and those lists' items merged in order.

    Snakemake keeps only the last ``--config`` it is given; the driver adds its own items (``batch=i/n``), so
    it passes a single merged list.
    """
    return _split_option(args, ("--config", "-C"))


def _split_option(args: list[str], names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``args`` without the value lists of the options ``names``, and those values in order."""
    rest, values, in_option = [], [], False
    for arg in args:
        if arg in names:
            in_option = True
        elif in_option and not arg.startswith("-"):
            values.append(arg)
        else:
            in_option = False
            rest.append(arg)
    return rest, values


def config_value(key: str, items: list[str], args: list[str], default: str) -> str:
    """A top-level config value as Snakemake will see it: ``--config`` items, then config files, then default."""
    for item in reversed(items):
        name, sep, value = item.partition("=")
        if sep and name == key:
            return value.strip("'\"")
    files = _split_option(args, ("--configfile", "--configfiles"))[1]
    for path in reversed(files or ["config/config.yaml"]):
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and key in data:
            return str(data[key])
    return default


def count_tracks(input_dir: str, exclude: tuple[str, ...] = ()) -> int:
    """About how many tracks ``input_dir`` holds (a folder with ``full_mix.*`` is one, else one per audio
    file), without reading any header: only the batch count depends on it."""
    excluded = {os.path.abspath(d) for d in exclude}
    count = 0
    for dirpath, dirnames, filenames in os.walk(input_dir, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and os.path.abspath(os.path.join(dirpath, d)) not in excluded]
        audio = [f for f in filenames if not f.startswith(".") and f.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS]
        count += 1 if any(f.rsplit(".", 1)[0] == "full_mix" for f in audio) else len(audio)
    return count


def corpus_rules(path: Path = CORPUS_RULES_FILE) -> list[str]:
    """The rules over the whole collection (those defined in ``workflow/rules/corpus.smk``)."""
    try:
        return re.findall(r"^rule (\w+):", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------------------------
# Stale lock.

def snakemake_processes(workdir: str) -> list[int]:
    """Pids of Snakemake schedulers whose working folder is ``workdir`` (this process excluded).

    A scheduler is a process whose command runs snakemake (``snakemake ...``, ``python -m snakemake``,
    ``.../snakemake/__main__.py``); the jobs it starts run scripts from ``.snakemake/scripts`` and are not
    schedulers.
    """
    target = os.path.realpath(workdir)
    pids = []
    proc = Path("/proc")
    if not proc.is_dir():
        return _snakemake_processes_psutil(target)
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == target and is_snakemake_command([a.decode("utf-8", "replace") for a in argv if a]):
            pids.append(int(entry.name))
    return sorted(pids)


def _snakemake_processes_psutil(target: str) -> list[int]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - /proc exists on Linux
        return []
    pids = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if p.info["pid"] != os.getpid() and p.info.get("cwd") and os.path.realpath(p.info["cwd"]) == target \
                and is_snakemake_command(p.info.get("cmdline") or []):
            pids.append(p.info["pid"])
    return sorted(pids)


def is_snakemake_command(argv: list[str]) -> bool:
    """Whether a command line runs the Snakemake scheduler (not a job script, not this driver)."""
    for i, arg in enumerate(argv[:3]):
        base = os.path.basename(arg)
        if base == "snakemake" or arg.endswith("snakemake/__main__.py"):
            return True
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "snakemake":
            return True
    return False


def clear_stale_lock(workdir: str) -> str | None:
    """Remove Snakemake's lock when no Snakemake process runs in ``workdir``; return what was done.

    Raises
    ------
    RuntimeError
        When a live Snakemake process holds the folder (its lock is left alone).
    """
    locks = Path(workdir) / ".snakemake" / "locks"
    files = sorted(p for p in locks.glob("*") if p.is_file()) if locks.is_dir() else []
    if not files:
        return None
    live = snakemake_processes(workdir)
    if live:
        raise RuntimeError(f"another Snakemake run (pid {', '.join(map(str, live))}) is working in "
                           f"'{os.path.realpath(workdir)}'. Wait for it to finish, or stop it "
                           f"(kill {live[0]}) and run again.")
    for path in files:
        path.unlink(missing_ok=True)
    return (f"removed the lock left by an interrupted run ({len(files)} file(s) in .snakemake/locks; no Snakemake "
            "process was running here); incomplete outputs are redone")


# ---------------------------------------------------------------------------------------------------------------
# Console.

_MODEL_ROW = re.compile(r"^    (?P<name>\S+)\s+(?P<status>.*?); needed by: (?P<users>.*)$")
_SKIP_ROW = re.compile(r"^    (?P<family>\S+)\s+(?P<count>\d+) track\(s\): (?P<reason>.*)$")


def condense_startup(lines: list[str], log_path: Path) -> list[str]:
    """The start-up report in a few lines: tracks and notes as they are, the model table and the skipped
    families counted (the full report stays in Snakemake's log, and ``-v`` prints it)."""
    out, missing, fetched, ok, skipped = [], [], 0, 0, []
    for line in lines:
        model, skip = _MODEL_ROW.match(line), _SKIP_ROW.match(line)
        if model:
            status = model["status"]
            if status.startswith("MISSING"):
                missing.append(model["users"].replace(" (optional)", ""))
            elif status.startswith("will be fetched"):
                fetched += 1
            else:
                ok += 1
        elif skip:
            skipped.append(f"{skip['family']} ({skip['count']})")
        elif line.startswith(("mirflow:", "  note:", "  ... and")):
            out.append(line)
    if missing or fetched or ok:
        users = sorted({u for m in missing for u in m.split(", ")})
        out.append(f"  models: {ok} present, {fetched} fetched during the run, {len(missing)} missing"
                   + (f" (needed by {', '.join(users)}: `make models` fetches them)" if missing else ""))
    if skipped:
        out.append(f"  families skipped (tracks): {', '.join(skipped)}")
    if missing or skipped:
        out.append(f"  (the full start-up report, with every reason: {os.path.relpath(log_path)})")
    return out


class Console:
    """The quiet console: start-up report, progress with ETA, one line per finished track or failed job.

    On a terminal the progress is one tqdm bar; elsewhere (a pipe, a log file, CI) one line per tenth of the
    jobs, so a night's log stays short.
    """

    def __init__(self, verbose: bool, stream=None):
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None
        self.label = "jobs"
        self.total = 0
        self.started = time.time()
        self.next_tenth = 1

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def start_bar(self, total: int) -> None:
        if self.verbose:
            return
        self.close_bar()
        self.total, self.started, self.next_tenth = total, time.time(), 1
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.label, unit="job", file=self.stream, dynamic_ncols=True,
                            smoothing=0.05, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                                       "jobs [{elapsed}<{remaining}]")

    def progress(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(max(0, done - self.bar.n))
        elif not self.verbose and self.total and done * 10 >= self.next_tenth * self.total:
            self.next_tenth = done * 10 // self.total + 1
            elapsed = time.time() - self.started
            eta = elapsed / done * (self.total - done) if done else 0.0
            self.write(f"{self.label}: {done}/{self.total} jobs ({100 * done // self.total}%), "
                       f"{_clock(elapsed)} elapsed" + (f", about {_clock(eta)} left" if done < self.total else ""))

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Snakemake ends when the driver dies (kill -9 of `make run`): a scheduler left running would hold the lock."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_snakemake(args: list[str], *, results_dir: str, section: str, console: Console, log_path: Path,
                  show_startup: bool, record: bool = True) -> tuple[int, dict]:
    """One Snakemake invocation, its output teed to ``log_path`` and parsed; returns (exit code, record entry)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parser = SnakemakeLogParser(results_dir)
    env = {**os.environ, "MIRFLOW_DRIVER": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "snakemake", *args]
    started = time.time()
    tail: list[str] = []
    startup = show_startup
    in_startup = False
    report: list[str] = []
    interrupted = False
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:  # line by line: a kill loses nothing
        log.write("# " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                env=env, bufsize=1, preexec_fn=_pdeathsig if os.name == "posix" else None)
        assert proc.stdout is not None  # stdout=PIPE
        try:
            for line in proc.stdout:
                log.write(line)
                text = line.rstrip("\n")
                tail = (tail + [text])[-40:]
                if console.verbose:
                    print(text, file=sys.stdout, flush=True)
                elif startup:
                    if text.startswith("mirflow:"):
                        in_startup = True
                    elif text.startswith(_STARTUP_END) or (in_startup and text and not text.startswith(" ")):
                        if report:
                            console.write("\n".join(condense_startup(report, log_path)))
                        in_startup = startup = False
                    if in_startup:
                        report.append(text)
                for event in parser.feed(text):
                    _show(event, console, parser, results_dir)
        except KeyboardInterrupt:
            # Ctrl-C reaches Snakemake too (same process group): let it stop its jobs, then summarise.
            interrupted = True
            proc.wait()
        for event in parser.close():
            _show(event, console, parser, results_dir)
        code, peak_kb = _wait(proc)
    console.close_bar()
    state = parser.state
    if code != 0:  # on a cluster: the SLURM job of each failure, and the jobs of a failed group submission
        add_cluster_failures(state, log_path.read_text(encoding="utf-8", errors="replace"), results_dir)
    if code != 0 and not state.failures and not console.verbose and not interrupted:
        # Snakemake stopped before or outside the jobs (a config error, a locked folder...): show why.
        shown = [t for t in tail if t.strip() and not t.startswith(("Complete log", "Elapsed time"))]
        console.write("\n".join([f"Snakemake stopped (exit code {code}); the end of its output:",
                                 *("  " + t for t in shown[-15:])]))
    done = finished_tracks(state, results_dir)
    entry = record_entry(state, started=started, ended=time.time(), exit_code=code, log=str(log_path),
                         audio_s=audio_seconds(done, results_dir), tracks_finished=len(done))
    entry["peak_rss_mb"] = round(peak_kb / 1024, 1)
    if interrupted:
        entry["exit_code"] = code = code or 130
        entry["interrupted"] = True
    if state.nothing_to_do and not console.verbose:
        console.write("Nothing to be done: every output is up to date.")
    if record:
        update_record(results_dir, section, entry, attempted_logs(state), started=started)
    return code, entry


def held_back_by_a_group(entry: dict) -> bool:
    """Whether a run's failures include jobs of a cluster group job shared by several tracks: Snakemake fails
    the whole group for one bad track, and the next run gives every failed track groups of its own
    (mirflow.layout.isolated_group), so one more pass finishes the good tracks of those groups."""
    return any(f.get("slurm_group") and is_shared_group(f["slurm_group"]) for f in entry.get("failures", []))


def run_isolating(args: list[str], *, log_path: Path, console: Console, **kwargs) -> tuple[int, dict]:
    """:func:`run_snakemake`, then once more when a shared cluster group held good tracks back, so that one
    `make run` on a cluster leaves the same failures as on a workstation (only the bad tracks')."""
    code, entry = run_snakemake(args, log_path=log_path, console=console, **kwargs)
    if code != 0 and not entry.get("interrupted") and kwargs.get("record", True) and held_back_by_a_group(entry):
        console.write("mirflow: a failing track failed its whole cluster group job; running the failed tracks "
                      "again, each in group jobs of its own, so the others of those groups finish")
        code, entry = run_snakemake(args, log_path=log_path.with_name(log_path.stem + "-alone.log"),
                                    console=console, **{**kwargs, "show_startup": False})
    return code, entry


def _wait(proc: subprocess.Popen) -> tuple[int, int]:
    """Exit code and peak resident memory (kB) of Snakemake or the largest of the processes it waited for."""
    if proc.returncode is None and hasattr(os, "wait4"):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_maxrss
    return proc.wait(), 0


def _show(event: tuple, console: Console, parser: SnakemakeLogParser, results_dir: str) -> None:
    kind = event[0]
    if kind == "stats":
        console.start_bar(event[1])
    elif kind == "progress":
        console.progress(event[1])
    elif kind == "finished" and not console.verbose:
        final = "crops" if parser.state.rule_counts.get("crops") else TRACK_INFO
        if event[2] == final and event[3].get("log"):
            console.write(f"done    {track_from_log(event[3]['log'], results_dir)}")
    elif kind == "failed" and not console.verbose:
        f = event[1]
        where = f"{f.track} / {f.step}" if f.track else f"(corpus) {f.step}"
        console.write(f"FAILED  {where}: {f.reason[:300]}\n        log: {os.path.relpath(f.log) if f.log else '-'}")


# ---------------------------------------------------------------------------------------------------------------
# Batches: which are finished (resume after an interruption).

def _state_path(results_dir: str) -> Path:
    return Path(results_dir) / "logs" / "batches.json"


def batch_fingerprint(snakemake_args: list[str], config_items: list[str], batches: int) -> str:
    """What makes two split runs the same run: the arguments, the config files' content, the split."""
    digest = hashlib.sha256(json.dumps([snakemake_args, config_items, batches]).encode())
    for path in ["config/config.yaml", *[a for a in snakemake_args if a.endswith((".yaml", ".yml", ".json"))]]:
        try:
            digest.update(Path(path).read_bytes())
        except OSError:
            pass
    return digest.hexdigest()[:16]


def load_batch_state(results_dir: str, fingerprint: str) -> set[str]:
    try:
        state = read_json(_state_path(results_dir))
    except (OSError, ValueError):
        return set()
    return set(state.get("done", [])) if state.get("fingerprint") == fingerprint else set()


def save_batch_state(results_dir: str, fingerprint: str, done: set[str]) -> None:
    write_json_atomic(_state_path(results_dir), {"fingerprint": fingerprint, "done": sorted(done, key=_batch_key)})


def _batch_key(spec: str) -> tuple[int, int]:
    i, n = spec.split("/")
    return int(n), int(i)


# ---------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mirflow.run", allow_abbrev=False,
        description="Run the mirflow workflow with a progress bar and a summary; other arguments go to Snakemake.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print Snakemake's full output")
    parser.add_argument("--batch-size", type=int, default=int(os.environ.get("MIRFLOW_BATCH_SIZE", DEFAULT_BATCH_SIZE)),
                        help=f"split collections larger than this many tracks into batches "
                             f"(default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--batches", type=int, default=None, help="number of batches (default: from --batch-size)")
    ours, rest = parser.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    args, items = split_config(rest)
    if not any(a in ("-s", "--snakefile") or a.startswith("--snakefile=") for a in args) and \
            not Path("workflow/Snakefile").is_file():
        args = ["-s", str(SNAKEFILE), *args]
    results_dir = config_value("results_dir", items, args, "results")
    input_dir = config_value("input_dir", items, args, "demo")
    dry = any(a in ("-n", "--dry-run", "--dryrun", "--summary", "-S") for a in args)
    console = Console(ours.verbose)

    workdir = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-d", "--directory")), os.getcwd())
    try:
        note = clear_stale_lock(workdir)
    except RuntimeError as err:
        console.write(f"mirflow: {err}")
        return 1
    if note:
        console.write(f"mirflow: {note}")

    tracks = count_tracks(input_dir, (results_dir,)) if os.path.isdir(input_dir) else 0
    n = ours.batches or batch_count(tracks=tracks, batch_size=ours.batch_size)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = Path(results_dir) / "logs" / "snakemake"
    codes: list[int] = []
    wall = audio = finished = 0.0
    if n <= 1:
        code, entry = run_isolating([*args, "--config", *items], results_dir=results_dir, section="all",
                                    console=console, log_path=logs / f"{stamp}.log", show_startup=True,
                                    record=not dry)
        codes.append(code)
        wall, audio, finished = entry["wall_s"], entry["audio_s"], entry["tracks_finished"]
    else:
        fingerprint = batch_fingerprint(args, items, n)
        done = load_batch_state(results_dir, fingerprint)
        console.write(f"mirflow: about {tracks} tracks under '{input_dir}': {n} batches of about "
                      f"{-(-tracks // n)} tracks, each its own Snakemake run"
                      + (f"; resuming: {len(done)} batch(es) finished in the interrupted run" if done else ""))
        omit = corpus_rules()
        t0 = time.time()
        for i in range(1, n + 1):
            spec = f"{i}/{n}"
            if spec in done:
                console.write(f"batch {spec}: finished in an earlier attempt of this run, skipped")
                continue
            console.label = f"batch {spec}"
            code, entry = run_isolating([*args, *(["--omit-from", *omit] if omit else []), "--config", *items,
                                         f"batch={spec}"], results_dir=results_dir, section=spec,
                                        console=console, log_path=logs / f"{stamp}-batch{i}of{n}.log",
                                        show_startup=not codes, record=not dry)
            codes.append(code)
            if entry.get("interrupted"):
                console.write(f"interrupted during batch {spec}: `make run` resumes there")
                omit = []  # no corpus pass after an interruption
                break
            wall, audio = wall + entry["wall_s"], audio + entry["audio_s"]
            finished += entry["tracks_finished"]
            if not dry and code == 0:  # a batch with a failed job is tried again by the next `make run`
                done.add(spec)
                save_batch_state(results_dir, fingerprint, done)
            left = n - i
            eta = (time.time() - t0) / max(1, len(codes)) * left
            console.write(f"batch {spec}: {entry['jobs_done']}/{entry['jobs_total']} jobs, "
                          f"{len(entry['failures'])} failed, {entry['tracks_finished']} track(s) finished in "
                          f"{entry['wall_s']:.0f} s, peak memory {entry['peak_rss_mb'] / 1024:.2f} GB"
                          + (f"; {left} batch(es) left, about {eta / 60:.0f} min" if left else ""))
        if omit and not dry:
            if any(codes):
                console.write("corpus outputs (" + ", ".join(omit) + ") not rebuilt: some jobs failed; "
                              "`make report` builds the report from the .INFO files present")
            else:
                console.label = "corpus outputs"
                code, entry = run_snakemake([*args, "--allowed-rules", *omit, "all", "--config", *items],
                                            results_dir=results_dir, section=f"corpus/{n}", console=console,
                                            log_path=logs / f"{stamp}-corpus.log", show_startup=False)
                codes.append(code)
                wall += entry["wall_s"]
        if not dry and all(c == 0 for c in codes):
            _state_path(results_dir).unlink(missing_ok=True)
    if not dry:
        print(render_summary(results_dir, None, run={"wall_s": wall, "audio_s": audio,
                                                      "tracks_finished": int(finished)}),
              file=sys.stderr, end="")
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    raise SystemExit(main())
