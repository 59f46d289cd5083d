"""Worker processes for an experiment's jobs (wasserflow.experiments.workers): the same numbers
as one process at the same thread count, teachers before their students, errors raised."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from wasserflow.cli import main
from wasserflow.errors import TooLarge
from wasserflow.experiments import reproduce, resolve_config
from wasserflow.experiments.config import ReproduceConfig
from wasserflow.experiments.context import Context
from wasserflow.experiments.workers import check_workers, run_jobs


def _timed(ctx: Context, arg: tuple[str, float], frac) -> tuple[str, float, float, int]:
    name, seconds = arg
    t0 = time.time()
    time.sleep(seconds)
    return name, t0, time.time(), torch.get_num_threads()


def _fail(ctx: Context, arg: int, frac) -> int:
    if arg == 2:
        raise TooLarge(f"job {arg} refused", needed=10, available=4)
    return arg


def _ctx(tmp_path, workers: int, lines: list | None = None) -> Context:
    cfg = resolve_config("test")
    report = None if lines is None else (lambda d, f: lines.append((d, f)))
    return Context(out=tmp_path, config=cfg, workers=workers, progress=report)


def test_later_jobs_start_after_the_others_and_results_keep_order(tmp_path):
    lines: list = []
    args = [("student", 0.1), ("a", 0.6), ("b", 0.3), ("c", 0.3)]
    out = run_jobs(
        _ctx(tmp_path, 2, lines), _timed, args, [a for a, _ in args], [True] + [False] * 3
    )
    assert [o[0] for o in out] == ["student", "a", "b", "c"]
    student_start = out[0][1]
    assert student_start >= max(o[2] for o in out[1:])
    assert all(o[3] >= 1 for o in out)  # one thread per core share in each worker
    assert any("of 3 done, 2 workers" in d for d, _ in lines)
    assert [f for _, f in lines] == sorted(f for _, f in lines)  # monotone progress


def test_a_jobs_error_is_raised_in_the_parent(tmp_path):
    with pytest.raises(TooLarge, match="job 2 refused") as e:
        run_jobs(_ctx(tmp_path, 2), _fail, [1, 2, 3], ["one", "two", "three"])
    assert (e.value.needed, e.value.available) == (10, 4)  # its attributes survive the pickle
    assert run_jobs(_ctx(tmp_path, 1), _fail, [1, 3], ["one", "three"]) == [1, 3]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        check_workers(bad)


def _timeless(o):
    """``o`` without its wall-clock fields (training and sampling seconds)."""
    if isinstance(o, dict):
        return {k: _timeless(v) for k, v in o.items() if not k.endswith("seconds")}
    if isinstance(o, list):
        return [_timeless(v) for v in o]
    return o


def _numbers(folder, name: str) -> dict:
    result = json.loads((folder / "results.json").read_text())["experiments"][name]
    return _timeless(result["numbers"])


def _one_thread(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "name, methods",
    [("learned", ["otcfm", "flowmap-distill", "icfm"]), ("images", ["otcfm", "ddpm"])],
)
def test_workers_give_the_numbers_of_one_process_at_their_thread_count(
    tmp_path, monkeypatch, name, methods
):
    """Two workers (one thread each here; a distillation after its teacher) against the same
    run in this process with one thread: equal to the last bit."""
    monkeypatch.setattr("wasserflow.experiments.workers.cpu_count", lambda: 2)
    cfg: ReproduceConfig = resolve_config("test", methods=methods)
    reproduce(tmp_path / "two", cfg, experiments=[name], workers=2)
    env = json.loads((tmp_path / "two" / "environment.json").read_text())
    assert env["workers"] == 2
    _one_thread(lambda: reproduce(tmp_path / "one", cfg, experiments=[name], workers=1))
    assert _numbers(tmp_path / "two", name) == _numbers(tmp_path / "one", name)
    if name == "learned":  # the report's teacher, trained first
        student = tmp_path / "two/runs/moons/flowmap-distill/config.json"
        assert json.loads(student.read_text())["objective"]["teacher"].endswith("otcfm")


def test_cli_refuses_zero_workers(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "reproduce",
                "denoise-jko",
                "--profile",
                "test",
                "--out",
                str(tmp_path),
                "--workers",
                "0",
            ]
        )
    assert e.value.code == 2


def test_ctrl_c_in_the_parent_stops_the_workers_and_the_run_resumes(tmp_path):
    """SIGINT to the parent alone (not its process group) while two workers train: exit 130
    with one line within seconds, no worker left holding a run folder, and the same command
    then finishes the run."""
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "wasserflow", "reproduce", "learned", "--profile", "test"]
    argv += ["--methods", "otcfm,icfm,ddpm", "--workers", "2", "--out", str(out)]
    # SIGINT at its default in the child: a test run started in the background by a
    # non-interactive shell has it ignored, and an exec keeps ignored signals ignored
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("runs/moons/*/checkpoint.safetensors")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 15
    assert err.strip().splitlines()[-1].startswith("interrupted")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["experiments"]["learned"]["numbers"]["runs"]["moons"]) == {
        "otcfm",
        "icfm",
        "ddpm",
    }
