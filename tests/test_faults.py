"""Fault injection: signals, two writers, damaged files and bad paths through every command.

Every anticipated failure exits with its code (2: bad input, bad environment, divergence; 130:
Ctrl-C), prints exactly one line on stderr (no traceback) naming the problem, and leaves no
half-written file (the temporary files of ``_atomic.atomic_path`` are ``.<name>.*``); a run
stopped by SIGINT or SIGKILL at a seeded point resumes to the same tensors as a run never
stopped. The signalled processes start together and one poll loop (:func:`faults`) signals
each at its point: training interrupted by SIGINT runs as a real ``python -m wasserflow``
process; the others (SIGKILL in training while a second writer is refused, SIGINT and SIGKILL
in sampling, SIGINT in ``reproduce``) are forks of the test process running the same
:func:`main`, which spares them the 5 s of CPU that importing torch and POT costs each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from wasserflow._lock import LOCK_NAME, folder_lock
from wasserflow.cli import main

POINTS = random.Random(1203)  # the seeded "random" points where faults strike
TINY = "--method icfm --data moons --width 16 --depth 1 --batch-size 32".split()
# long enough that a signal at metrics line 40-200 lands while training runs, also on a
# loaded machine (an earlier 400 steps took 0.8 s after the step overhead was trimmed)
LONG = [
    *TINY,
    "--steps",
    "1000",
    "--set",
    "train.checkpoint_every=25",
    "--set",
    "train.log_every=1",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``wasserflow argv`` run in this process."""
    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def hidden(folder: Path) -> list[str]:
    """Temporary and lock files left anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob(".*"))


def tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint.safetensors"))


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def checkpoint_meta(path: Path) -> dict:
    """The wasserflow metadata of a checkpoint."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["wasserflow"])


def lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` unwritable, even for root (``chattr +i``); skips where that cannot be done."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    r = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if r.returncode:
        pytest.skip("root cannot make a folder read-only here (no chattr +i)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished 30-step run (checkpoints every 10 steps)."""
    out = tmp_path_factory.mktemp("faults") / "base"
    main(["train", *TINY, "--steps", "30", "--out", str(out), "--set", "train.checkpoint_every=10"])
    return out


@pytest.fixture
def run30(base, tmp_path) -> Path:
    """A fresh copy of the finished run, to damage."""
    return Path(shutil.copytree(base, tmp_path / "run"))


# ---------------------------------------------------------------- signals (one poll loop)


class Fault:
    """A ``wasserflow`` process and the signal it gets ``delay`` seconds after ``ready()``.

    ``spawn``: a new ``python -m wasserflow`` process; otherwise a fork of this one running
    :func:`main` (the same code without paying the imports again: about 5 s of CPU each).
    """

    def __init__(self, name, argv, sig, ready, delay=0.0, *, folder, spawn=False):
        self.name, self.sig, self.ready, self.delay = name, sig, ready, delay
        self.err_path = folder / f"{name}.err"
        argv = [str(a) for a in argv]
        spawn = spawn or threading.active_count() > 1  # forking a threaded process is unsafe
        with open(self.err_path, "w") as err:
            if spawn:
                cmd = [sys.executable, "-m", "wasserflow", *argv]
                self.proc = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV, cwd=folder
                )
                self.pid = self.proc.pid
            else:
                self.proc, self.pid = None, _fork_main(argv, err.fileno())
        self.returncode: int | None = None
        self.ready_since: float | None = None
        self.sent = False

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def _poll(self) -> int | None:
        if self.proc is not None:
            return self.proc.poll()
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        return os.waitstatus_to_exitcode(status) if pid else None

    def poll(self, before_signal=None) -> bool:
        """Send the signal when due; True once the process has ended."""
        self.returncode = self._poll()
        if self.returncode is not None:
            return True
        if not self.sent and self.ready(self):
            self.ready_since = self.ready_since or time.monotonic()
            if time.monotonic() - self.ready_since >= self.delay:
                if before_signal is not None:
                    before_signal(self)
                os.kill(self.pid, self.sig)
                self.sent = True
        return False


def _fork_main(argv: list[str], err_fd: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: stdout to /dev/null, stderr to err_fd, then the command line
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(err_fd, 2)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@pytest.fixture(scope="module")
def faults(base, tmp_path_factory):
    """Start every signalled process at once, signal each at its seeded point, collect them.

    Python's own SIGINT handler is installed here first: a test run started in the background
    by a non-interactive shell inherits SIGINT ignored, and a spawned child would keep ignoring
    it (an exec resets handled signals to their default, not ignored ones)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield _signalled(base, tmp_path_factory)
    finally:
        signal.signal(signal.SIGINT, previous)


def _signalled(base, tmp_path_factory):
    d = tmp_path_factory.mktemp("signals")
    k_int, k_kill = POINTS.randint(40, 200), POINTS.randint(40, 150)
    at_step = lambda run, k: lambda f: lines(d / run / "metrics.jsonl") >= k  # noqa: E731
    now = lambda f: True  # noqa: E731
    started = lambda f: (d / "rep" / "config.json").exists()  # noqa: E731
    sample = ["sample", base, "--n", "200000", "--nfe", "100"]
    fs = [
        Fault(
            "train-int",
            ["train", *LONG, "--out", d / "int"],
            signal.SIGINT,
            at_step("int", k_int),
            folder=d,
            spawn=True,
        ),
        Fault(
            "train-kill",
            ["train", *LONG, "--out", d / "kill"],
            signal.SIGKILL,
            at_step("kill", k_kill),
            folder=d,
        ),
        Fault(
            "sample-int",
            # 4x the NFE of the others: on a fast machine the sampling outlasts the delay
            ["sample", base, "--n", "200000", "--nfe", "400", "--out", d / "s-int.npy"],
            signal.SIGINT,
            now,
            POINTS.uniform(3.5, 4.5),  # past the start-up (imports: about 3 s), while it samples
            folder=d,
        ),
        Fault(
            "sample-kill",
            [*sample, "--out", d / "s-kill.npy"],
            signal.SIGKILL,
            now,
            POINTS.uniform(0.05, 1.5),
            folder=d,
        ),
        Fault(
            "reproduce-int",
            ["reproduce", "paths", "--profile", "test", "--out", d / "rep"],
            signal.SIGINT,
            started,
            POINTS.uniform(0.1, 1.0),
            folder=d,
        ),
    ]
    second: dict[str, tuple[int, str]] = {}

    def second_writers(f: Fault) -> None:
        """While the run is being written: a resume and a fresh start into its folder."""
        for name, argv in (
            ("resume", ["train", "--out", d / "kill", "--resume"]),
            ("fresh", ["train", *TINY, "--steps", "5", "--out", d / "kill"]),
        ):
            err = io.StringIO()
            with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(err):
                main([str(a) for a in argv])
            second[name] = (e.value.code, err.getvalue())

    deadline = time.monotonic() + 240
    pending = {f.name: f for f in fs}
    while pending:
        assert time.monotonic() < deadline, f"still running: {list(pending)}"
        for name, f in list(pending.items()):
            if f.poll(second_writers if name == "train-kill" else None):
                del pending[name]
        time.sleep(0.003)
    ref = d / "ref"
    main(["train", *LONG, "--out", str(ref)])
    return d, {f.name: f for f in fs}, second, ref


def test_sigint_in_training_exits_130_in_one_line_and_resume_equals_uninterrupted(faults, capsys):
    d, fs, _, ref = faults
    f = fs["train-int"]
    assert f.sent and f.returncode == 130, f.err
    line = one_line(f.err)
    assert line.startswith("interrupted:") and f"{d / 'int'}" in line and "--resume" in line
    step = checkpoint_meta(d / "int" / "checkpoint.safetensors")["step"]
    assert f"saved at step {step}" in line and step % 25 == 0
    assert hidden(d / "int") == []  # no temporary files, the lock released
    code, _, err = cli(["train", "--out", d / "int", "--resume"], capsys)
    assert code == 0, err
    assert_same_tensors(d / "int", ref)
    assert len((d / "int" / "metrics.jsonl").read_text().splitlines()) == 1000


def test_a_second_writer_is_refused_with_the_pid_and_sigkill_resumes_equal(faults, capsys):
    d, fs, second, ref = faults
    f = fs["train-kill"]
    assert f.sent and f.returncode == -signal.SIGKILL
    for code, err in second.values():  # refused while the run was being written
        assert code == 2 and f"is in use by process {f.pid}" in one_line(err)
    assert (d / "kill" / LOCK_NAME).read_text().strip() == str(f.pid)  # the dead holder's
    code, _, err = cli(["train", "--out", d / "kill", "--resume"], capsys)
    assert code == 0, err  # the stale lock is taken over
    assert_same_tensors(d / "kill", ref)
    assert hidden(d / "kill") == []


def test_second_writer_message_names_the_holder(tmp_path, base, capsys):
    run = Path(shutil.copytree(base, tmp_path / "r"))
    with folder_lock(run):  # held by this process through its own descriptor
        code, _, err = cli(["train", "--out", run, "--resume", "--steps", "40"], capsys)
        assert code == 2
        assert f"in use by process {os.getpid()}" in one_line(err)
        code, _, err = cli(["train", *TINY, "--steps", "5", "--out", tmp_path / "r"], capsys)
        assert code == 2 and f"process {os.getpid()}" in one_line(err)
    assert not (run / "history.jsonl").exists()  # the refused resume changed nothing


def test_sigint_and_sigkill_in_sampling_leave_no_partial_file(faults):
    d, fs, _, _ = faults
    f = fs["sample-int"]
    assert f.sent and f.returncode == 130, f.err
    assert one_line(f.err).startswith("interrupted")
    assert not (d / "s-int.npy").exists()
    k = fs["sample-kill"]
    out = d / "s-kill.npy"
    assert k.returncode in (0, -signal.SIGKILL), k.err
    if out.exists():  # killed after the rename: the file is whole
        assert np.load(out).shape == (200000, 2)
    assert not [p for p in d.glob(".s-int.npy.*")]


_LOADING = """
import os, signal, sys, time
from wasserflow._interrupt import exit_on_ctrl_c
with exit_on_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the handler runs here: no KeyboardInterrupt, the process ends
print("after the block", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


@pytest.mark.parametrize("ignored", [False, True])
def test_ctrl_c_while_the_commands_load_ends_the_process_in_one_line(ignored):
    """SIGINT inside :func:`wasserflow._interrupt.exit_on_ctrl_c` (the CLI's module loading:
    torch, POT) ends the process at once with "interrupted" and 130, raising nothing (a
    KeyboardInterrupt inside torch's extension initialisation once made pybind11 abort the
    process); a process started with SIGINT ignored keeps ignoring it, and Python's own handler
    is back after the block."""
    disposition = signal.SIG_IGN if ignored else signal.SIG_DFL
    r = subprocess.run(
        [sys.executable, "-c", _LOADING],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
    )
    if ignored:
        assert (r.returncode, r.stdout.strip()) == (0, "after the block False"), r.stderr
    else:
        assert (r.returncode, r.stderr, r.stdout) == (130, "interrupted\n", "")


def test_ctrl_c_handling_while_loading_is_left_alone_outside_the_main_thread():
    """Python runs signal handlers in the main thread only: elsewhere the block changes
    nothing (and does not fail)."""
    from wasserflow._interrupt import exit_on_ctrl_c

    seen = []

    def body():
        before = signal.getsignal(signal.SIGINT)
        with exit_on_ctrl_c():
            seen.append(signal.getsignal(signal.SIGINT) is before)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [True]


def test_sigint_in_reproduce_names_the_partial_report(faults):
    d, fs, _, _ = faults
    f = fs["reproduce-int"]
    assert f.sent and f.returncode == 130, f.err
    line = one_line(f.err)
    assert str(d / "rep" / "report.html") in line and "rerun" in line
    assert json.loads((d / "rep" / "results.json").read_text())["status"] == "interrupted"
    assert (d / "rep" / "report.html").is_file()
    assert hidden(d / "rep") == []


# ---------------------------------------------------------------- run folders


def test_resume_refuses_other_settings_and_records_permitted_changes(run30, capsys):
    before = (run30 / "config.json").read_text()
    for argv, needle in (
        (["--method", "otcfm"], "method: 'icfm' in the run, 'otcfm' given"),
        (["--width", "32"], "model.width: 16 in the run, 32 given"),
        (["--data", "8gaussians"], "data.spec: 'moons' in the run, '8gaussians' given"),
        (["--steps", "10"], "trained 30 steps already"),
    ):
        code, _, err = cli(["train", "--out", run30, "--resume", *argv], capsys)
        assert code == 2 and needle in one_line(err), err
    assert (run30 / "config.json").read_text() == before
    code, out, err = cli(
        ["train", "--out", run30, "--resume", "--steps", "40", "--lr", "5e-4"], capsys
    )
    assert code == 0, err
    assert "changed train.lr 0.001 -> 0.0005" in out
    hist = [json.loads(x) for x in (run30 / "history.jsonl").read_text().splitlines()]
    assert [(h["key"], h["old"], h["new"], h["step"]) for h in hist] == [
        ("train.lr", 0.001, 0.0005, 30),
        ("train.steps", 30, 40, 30),
    ]
    cfg = json.loads((run30 / "config.json").read_text())
    assert cfg["train"]["lr"] == 5e-4 and cfg["train"]["steps"] == 40
    meta = checkpoint_meta(run30 / "checkpoint.safetensors")
    assert meta["step"] == 40 and meta["train"]["lr"] == 5e-4
    code, _, err = cli(["train", "--out", run30, "--resume"], capsys)  # resumes again, quietly
    assert code == 0 and err == ""


def test_resume_without_a_run_says_so(tmp_path, capsys):
    code, _, err = cli(["train", "--out", tmp_path / "nope", "--resume"], capsys)
    assert code == 2 and "does not exist" in one_line(err)
    assert not (tmp_path / "nope").exists()
    (tmp_path / "empty").mkdir()
    code, _, err = cli(["train", "--out", tmp_path / "empty", "--resume"], capsys)
    assert code == 2 and "holds no run" in one_line(err)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_start_that_saved_no_checkpoint_does_not_block_the_next(run30, capsys):
    for p in ("checkpoint.safetensors", "metrics.jsonl"):
        (run30 / p).unlink()  # as if stopped before its first checkpoint
    code, _, err = cli(["train", *TINY, "--steps", "12", "--out", run30], capsys)
    assert code == 0, err
    assert json.loads((run30 / "config.json").read_text())["train"]["steps"] == 12
    (run30 / "checkpoint.safetensors").unlink()
    code, _, err = cli(["train", "--out", run30, "--resume"], capsys)
    assert code == 0, err


def test_a_diverged_run_resumes_from_its_last_good_checkpoint_at_a_lower_lr(tmp_path, capsys):
    out = tmp_path / "nan"
    argv = ["train", *TINY, "--steps", "30", "--out", out, "--lr", "1e8"]
    argv += ["--set", "train.warmup=1", "--set", "train.checkpoint_every=2"]
    code, _, err = cli(argv, capsys)
    line = one_line(err)
    assert code == 2 and "NaN or inf" in line and "checkpoint.safetensors (step" in line
    assert f"wasserflow train --out {out} --resume --lr 1e+07" in line
    code, _, err = cli(["train", "--out", out, "--resume", "--lr", "1e-3"], capsys)
    assert code == 0, err
    w = tensors(out)
    assert all(torch.isfinite(v).all() for v in w.values())
    hist = json.loads((out / "history.jsonl").read_text())
    assert hist["key"] == "train.lr" and hist["new"] == 1e-3 and 0 < hist["step"] < 30


def test_a_stale_lock_of_a_dead_process_is_taken_over(run30, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run30 / LOCK_NAME).write_text(f"{dead.pid}\n")
    code, _, err = cli(["train", "--out", run30, "--resume", "--steps", "35"], capsys)
    assert code == 0, err
    assert hidden(run30) == []


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--activation", "nope"], "unknown activation 'nope'"),
        (["--data", "missing.npy"], "missing.npy"),
        (["--model-set", "width=0"], "width"),
        (["--set", "train.decay=linear"], "decay 'linear'"),
        (["--lr", "-1"], "lr must be positive"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, capsys, argv, needle):
    base = ["train", "--method", "icfm", "--data", "moons", "--steps", "5"]
    code, _, err = cli([*base, "--out", tmp_path / "r", *argv], capsys)
    assert code == 2 and needle in one_line(err), err
    assert list(tmp_path.iterdir()) == []


def test_a_config_that_does_not_fit_its_data_is_one_line(run30, capsys):
    cfg = json.loads((run30 / "config.json").read_text())
    cfg["model"]["shape"] = [3]
    (run30 / "config.json").write_text(json.dumps(cfg))
    code, _, err = cli(["train", "--out", run30, "--resume"], capsys)
    assert code == 2 and "shape [3] but moons has shape [2]" in one_line(err)


# ---------------------------------------------------------------- damaged files


def _config(run: Path, kind: str) -> None:
    p = run / "config.json"
    text = p.read_text()
    p.write_bytes(
        {
            "empty object": b"{}",
            "missing keys": b'{"version": 2, "method": "icfm"}',
            "truncated": text[: len(text) // 2].encode(),
            "binary": bytes(range(256)) * 4,
            "a list": b"[]",
        }[kind]
    )


def _checkpoint(run: Path, kind: str) -> None:
    p = run / "checkpoint.safetensors"
    if kind == "other shapes":
        cfg = json.loads((run / "config.json").read_text())
        cfg["model"]["width"] = 24
        (run / "config.json").write_text(json.dumps(cfg))
        return
    data = p.read_bytes()
    p.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": os.urandom(512), "empty": b""}[kind]
    )


def _commands(run: Path, tmp: Path) -> list[list]:
    return [
        ["train", "--out", run, "--resume"],
        ["sample", run, "--n", "5", "--nfe", "2", "--out", tmp / "s.npy"],
        ["evaluate", run, "--n", "20", "--nfe", "1"],
    ]


@pytest.mark.parametrize("kind", ["empty object", "missing keys", "truncated", "binary", "a list"])
def test_a_damaged_config_is_one_line_naming_it(run30, tmp_path, capsys, kind):
    _config(run30, kind)
    for argv in _commands(run30, tmp_path):
        code, _, err = cli(argv, capsys)
        assert code == 2 and str(run30 / "config.json") in one_line(err), (argv, err)
    assert hidden(tmp_path) == [] and not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "other shapes"])
def test_a_damaged_checkpoint_is_one_line_naming_it(run30, tmp_path, capsys, kind):
    _checkpoint(run30, kind)
    for argv in _commands(run30, tmp_path):
        code, _, err = cli(argv, capsys)
        assert code == 2 and "checkpoint.safetensors" in one_line(err), (argv, err)
    assert hidden(tmp_path) == [] and not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize("damage", ["torn last line", "garbage line"])
def test_damaged_metrics_are_dropped_with_a_warning_on_resume(run30, capsys, damage):
    p = run30 / "metrics.jsonl"
    if damage == "torn last line":  # a write cut short by power loss: no newline
        p.write_text(p.read_text() + '{"step": 31, "loss": 0.5')
    else:
        rows = p.read_text().splitlines()
        p.write_text("\n".join([rows[0], "\x00\x00 not json", *rows[1:]]) + "\n")
    with pytest.warns(RuntimeWarning, match="metrics.jsonl: dropped 1 unreadable line"):
        code, _, err = cli(["train", "--out", run30, "--resume", "--steps", "40"], capsys)
    assert code == 0, err
    steps = [json.loads(x)["step"] for x in p.read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 40


# ---------------------------------------------------------------- bad output paths


@pytest.fixture
def clouds(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("x", "y"):
        np.save(tmp_path / f"{name}.npy", rng.normal(size=(30, 2)))
    return tmp_path


def _writer(command: str, base: Path, clouds: Path, out: Path) -> list:
    return {
        "train": ["train", *TINY, "--steps", "5", "--out", out],
        "reproduce": ["reproduce", "denoise-jko", "--profile", "test", "--out", out],
        "demo": ["demo", "--n", "20", "--out", out],
        "sample": ["sample", base, "--n", "5", "--nfe", "2", "--out", out],
        "ot interpolate": ["ot", "interpolate", clouds / "x.npy", clouds / "y.npy", "--out", out],
    }[command]


FOLDER_WRITERS = ["train", "reproduce", "demo"]
FILE_WRITERS = ["sample", "ot interpolate"]


@pytest.mark.parametrize(
    "kind", ["a regular file", "under a regular file", "read-only", "in a read-only folder"]
)
@pytest.mark.parametrize("command", FOLDER_WRITERS + FILE_WRITERS)
def test_an_unusable_output_path_is_one_line_naming_it(
    command, kind, base, clouds, tmp_path, capsys
):
    (tmp_path / "afile").write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    name = "s.npy" if command == "sample" else "g.png" if command == "ot interpolate" else "o"
    out = {
        "a regular file": tmp_path / "afile",
        "under a regular file": tmp_path / "afile" / name,
        "read-only": ro if command in FOLDER_WRITERS else ro / name,
        "in a read-only folder": ro / "sub" / name,
    }[kind]
    if command in FILE_WRITERS and kind == "a regular file":
        out = tmp_path / f"dir{Path(name).suffix}"
        out.mkdir()  # a folder where the file should go
    before = sorted(tmp_path.rglob("*"))
    ctx = read_only(ro) if "read-only" in kind else contextlib.nullcontext()
    with ctx:
        code, _, err = cli(_writer(command, base, clouds, out), capsys)
    assert code == 2, err
    line = one_line(err)
    assert str(out) in line, line
    assert sorted(tmp_path.rglob("*")) == before  # nothing was written


# ---------------------------------------------------------------- the exit-code policy


def test_a_bug_is_a_traceback_then_a_line_asking_for_a_report(monkeypatch, tmp_path, capsys):
    from wasserflow.cli import demo

    def boom(*a, **k):
        return 1 / 0

    monkeypatch.setattr(demo, "run_demo", boom)
    code, _, err = cli(["demo", "--out", tmp_path / "d"], capsys)
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err
    assert "bug in wasserflow" in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "exc, want, needle",
    [
        (KeyboardInterrupt, 130, "interrupted"),
        (OSError(28, "No space left on device"), 2, "no space left"),
        (PermissionError(13, "Permission denied", "/data/x.npy"), 2, "/data/x.npy: permission"),
        (FileNotFoundError("x.npy: no such file: check the path"), 2, "x.npy: no such file"),
        (OSError(22, "Invalid argument"), 1, "bug in wasserflow"),
    ],
)
def test_each_failure_inside_a_command_gets_its_code(
    monkeypatch, tmp_path, capsys, exc, want, needle
):
    from wasserflow.cli import demo

    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(demo, "run_demo", fail)
    code, _, err = cli(["demo", "--out", tmp_path / "d"], capsys)
    assert code == want
    last = err.strip().splitlines()[-1] if want == 1 else one_line(err)
    assert needle in last, err


def test_the_exit_code_typer_returns_is_honoured(monkeypatch, tmp_path, capsys):
    import typer

    from wasserflow.cli import demo

    def leave(*a, **k):
        raise typer.Exit(3)

    monkeypatch.setattr(demo, "run_demo", leave)
    code, _, _ = cli(["demo", "--out", tmp_path / "d"], capsys)
    assert code == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_one_line(base, tmp_path, capsys):
    for argv in (
        ["train", *TINY, "--steps", "5", "--out", tmp_path / "c", "--device", "cuda"],
        ["sample", base, "--n", "5", "--out", tmp_path / "s.npy", "--device", "cuda"],
        ["reproduce", "paths", "--profile", "test", "--out", tmp_path / "r", "--device", "cuda"],
    ):
        code, _, err = cli(argv, capsys)
        assert code == 2 and "CUDA" in one_line(err)
    assert sorted(tmp_path.iterdir()) == []
