"""Running one evaluation: a command in its own process group, or a Python function in a thread.

Both expose the same small interface to the agent loop: ``poll`` (non-blocking), ``wait`` (bounded),
``terminate`` (SIGTERM: please checkpoint and stop), ``kill``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol

from worker_bootstrap.metadata import tail
from worker_bootstrap.progress import append_line, stop_decided
from worker_bootstrap.progress_keys import (
    PROGRESS_FILE_ENV,
    PROGRESS_FILE_NAME,
    STOP_FILE_ENV,
    STOP_FILE_NAME,
)
from worker_bootstrap.results import InvalidResult, Outcome, outcome_from_text, values_from
from worker_bootstrap.snapshots.marker import MARKER_ENV, MARKER_NAME, write_mark

# Environment variables that must not leak into the user's evaluation.
_PRIVATE_ENV = ("SIGOPT_API_TOKEN", "OPTFLEET_TEST_CRASH_AT", "OPTFLEET_TOKEN_SECRET")


@dataclass
class Task:
    """One evaluation to run for a suggestion."""

    experiment_id: str
    suggestion_id: str
    instance_id: str
    assignments: Dict[str, Any]
    checkpoint_dir: Path
    run_dir: Path
    resumed: bool
    attempt: int
    run_id: Optional[str] = None  # an AI experiment's training run (OPTFLEET_RUN_ID)

    @property
    def result_file(self) -> Path:
        return self.run_dir / "result.json"

    @property
    def progress_file(self) -> Path:
        """Where the evaluation appends one JSON line per step (progress.py)."""
        return self.run_dir / PROGRESS_FILE_NAME

    @property
    def stop_file(self) -> Path:
        """Written by the agent once the server stopped the suggestion's training run."""
        return self.run_dir / STOP_FILE_NAME

    @property
    def checkpoint_saved_file(self) -> Path:
        """Written (or touched) by the evaluation once its checkpoint directory is complete."""
        return self.run_dir / MARKER_NAME

    def environment(self) -> Dict[str, str]:
        """The evaluation contract's variables."""
        return {
            "OPTFLEET_EXPERIMENT_ID": self.experiment_id,
            "OPTFLEET_SUGGESTION_ID": self.suggestion_id,
            "OPTFLEET_INSTANCE_ID": self.instance_id,
            "OPTFLEET_ASSIGNMENTS": json.dumps(self.assignments, sort_keys=True),
            "OPTFLEET_RESULT_FILE": str(self.result_file),
            PROGRESS_FILE_ENV: str(self.progress_file),
            STOP_FILE_ENV: str(self.stop_file),
            "OPTFLEET_CHECKPOINT_DIR": str(self.checkpoint_dir),
            MARKER_ENV: str(self.checkpoint_saved_file),
            "OPTFLEET_RESUMED": "1" if self.resumed else "0",
            "OPTFLEET_ATTEMPT": str(self.attempt),
            **({"OPTFLEET_RUN_ID": self.run_id} if self.run_id else {}),
        }


class Running(Protocol):
    """A started evaluation."""

    @property
    def pid(self) -> Optional[int]:
        """Its process (group) id, recorded in the journal; None when it runs in this process."""

    def poll(self) -> Optional[Outcome]:
        """The outcome once finished, else None."""

    def wait(self, timeout_s: float) -> Optional[Outcome]:
        """Block up to ``timeout_s`` for the outcome."""

    def terminate(self) -> None:
        """Ask the evaluation to stop (SIGTERM to its process group)."""

    def kill(self) -> None:
        """Stop it for good (SIGKILL to its process group)."""


class Evaluator(Protocol):
    """Starts evaluations."""

    def start(self, task: Task) -> Running:
        """Start evaluating ``task``; returns at once."""


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the agent dies, so a crashed agent leaves no stray worker."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def process_start_time(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (to recognise it across PID reuse), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def kill_stale_group(pid: Optional[int], start_time: Optional[str]) -> bool:
    """Kill a previous run's evaluation process group if that very process still exists."""
    if not pid or not start_time or process_start_time(pid) != start_time:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return False
    return True


class CommandRunning:
    """A command started by :class:`CommandEvaluator`."""

    def __init__(self, task: Task, process: subprocess.Popen[bytes], started: float) -> None:
        self.task = task
        self.process = process
        self.pid = process.pid
        self.started = started
        self.signalled = False

    def _outcome(self, returncode: int) -> Outcome:
        stderr_tail = _read_tail(self.task.run_dir / "stderr.log")
        meta: Dict[str, Any] = {}
        if returncode != 0:
            if returncode < 0:
                name = signal.Signals(-returncode).name
                reason = f"evaluation killed by signal {name}"
                meta["signal"] = name
            else:
                reason = f"evaluation exited with code {returncode}"
                meta["exit_code"] = returncode
            if stderr_tail:
                meta["stderr_tail"] = stderr_tail
            return Outcome(failure_reason=reason, metadata=meta)
        try:
            text = self.task.result_file.read_text(errors="replace")
        except FileNotFoundError:
            return Outcome(
                failure_reason="evaluation exited 0 without writing OPTFLEET_RESULT_FILE",
                metadata={"stderr_tail": stderr_tail} if stderr_tail else {},
            )
        try:
            return outcome_from_text(text)
        except InvalidResult as exc:
            return Outcome(failure_reason=f"invalid result: {exc}", metadata={"exit_code": 0})

    def poll(self) -> Optional[Outcome]:
        code = self.process.poll()
        return None if code is None else self._outcome(code)

    def wait(self, timeout_s: float) -> Optional[Outcome]:
        try:
            code = self.process.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return None
        return self._outcome(code)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signum)

    def terminate(self) -> None:
        self.signalled = True
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self.signalled = True
        self._signal_group(signal.SIGKILL)


def _read_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            return tail(handle.read().decode("utf-8", errors="replace"))
    except OSError:
        return ""


class CommandEvaluator:
    """Runs ``command`` with the contract's environment, output going to the run directory."""

    def __init__(
        self,
        command: List[str],
        workdir: Optional[Path] = None,
        environ: Optional[Mapping[str, str]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not command:
            raise ValueError("no evaluation command: give one after -- or set OPTFLEET_COMMAND")
        self.command = command
        self.workdir = workdir
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock

    def start(self, task: Task) -> Running:
        task.run_dir.mkdir(parents=True, exist_ok=True)
        task.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        # A result left by an interrupted earlier attempt must never be reported.
        task.result_file.unlink(missing_ok=True)
        env = {k: v for k, v in self.environ.items() if k not in _PRIVATE_ENV}
        env.update(task.environment())
        cwd = self.workdir or task.run_dir
        with (
            (task.run_dir / "stdout.log").open("ab") as out,
            (task.run_dir / "stderr.log").open("wb") as err,
        ):
            process = subprocess.Popen(  # noqa: S603 - the operator's own command
                self.command,
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=_die_with_parent,
            )
        return CommandRunning(task, process, self.clock())


class Context:
    """What a Python evaluation function receives besides the assignments."""

    def __init__(self, task: Task) -> None:
        self.suggestion_id = task.suggestion_id
        self.experiment_id = task.experiment_id
        self.instance_id = task.instance_id
        self.checkpoint_dir = task.checkpoint_dir
        self.resumed = task.resumed
        self.attempt = task.attempt
        self.run_id = task.run_id  # an AI experiment's training run; None for Core
        self.stop_requested = threading.Event()
        self.metadata: Dict[str, Any] = {}
        self.progress_file = task.progress_file
        self.stop_file = task.stop_file
        self.checkpoint_saved_file = task.checkpoint_saved_file
        self._progress_lock = threading.Lock()

    def report(
        self,
        step: int,
        value: Optional[float] = None,
        values: Optional[List[Dict[str, Any]]] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> bool:
        """Report one step's ``value`` (or named ``values``) as a progress line; True when the
        evaluation should stop: the server stopped its training run (the decision for a line
        arrives within about a second of it, so a loop that reports every step stops at the next
        report after it) or the agent is stopping (``stop_requested``). Returning then reports
        the returned value with ``stopped_early``; the agent never kills a function."""
        with self._progress_lock:
            append_line(self.progress_file, step, value, values, metadata)
        return self.stop_requested.is_set() or stop_decided(self.stop_file)

    def checkpoint_saved(self, step: Optional[int] = None) -> None:
        """Say ``checkpoint_dir`` now holds a complete checkpoint (of ``step``, optional): the
        agent may snapshot it for whichever instance takes the suggestion over. Call it after
        the last file is written and closed; TypeError for a step that is not an int >= 0."""
        write_mark(self.checkpoint_saved_file, step)


class FunctionRunning:
    """A Python function evaluating in a daemon thread."""

    pid: Optional[int] = None  # no process of its own

    def __init__(self, function: Callable[[Dict[str, Any], Context], Any], task: Task) -> None:
        self.context = Context(task)
        self._outcome: Optional[Outcome] = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(function, dict(task.assignments)), daemon=True
        )
        self._thread.start()

    def _run(self, function: Callable[[Dict[str, Any], Context], Any], assignments: Any) -> None:
        try:
            value = function(assignments, self.context)
            self._outcome = Outcome(values=values_from(value), metadata=self.context.metadata)
        except InvalidResult as exc:
            self._outcome = Outcome(failure_reason=f"invalid result: {exc}")
        except Exception as exc:
            self._outcome = Outcome(
                failure_reason=f"evaluation raised {type(exc).__name__}: {exc}",
                metadata=self.context.metadata,
            )
        finally:
            self._done.set()

    def poll(self) -> Optional[Outcome]:
        return self._outcome if self._done.is_set() else None

    def wait(self, timeout_s: float) -> Optional[Outcome]:
        self._done.wait(max(0.0, timeout_s))
        return self.poll()

    def terminate(self) -> None:
        self.context.stop_requested.set()

    def kill(self) -> None:
        # A thread cannot be killed; it is a daemon and its late result is ignored.
        self.context.stop_requested.set()


class FunctionEvaluator:
    """Evaluates with ``function(assignments, context)`` in this process."""

    def __init__(self, function: Callable[[Dict[str, Any], Context], Any]) -> None:
        self.function = function

    def start(self, task: Task) -> Running:
        task.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        task.run_dir.mkdir(parents=True, exist_ok=True)  # its progress and stop files
        return FunctionRunning(self.function, task)
