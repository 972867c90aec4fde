"""The learning-curve benchmark's harness at a tiny size (no timings asserted)."""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.bench_learning_curves import budget_of, report, run_all
from benchmarks.lc_fleet import server_policy
from benchmarks.lc_problems import MFH3_GOOD, PROBLEMS, mf_hartmann


def _runs(methods: tuple[str, ...], seed: int = 0) -> dict[str, object]:
    runs = run_all(["mfh3_good"], methods, [seed], workers=4, full_runs=1.5)
    return {run.method: run for run in runs}


def test_stopping_spends_fewer_instance_seconds_per_trial() -> None:
    runs = _runs(("optfleet", "optfleet_asha", "tpe_hyperband"))
    none, asha, hyperband = (runs[m] for m in ("optfleet", "optfleet_asha", "tpe_hyperband"))
    # Same budget: stopping runs more trials on fewer epochs each.
    assert none.stopped == 0 and asha.stopped > 0 and hyperband.stopped > 0  # type: ignore[attr-defined]
    assert asha.trials > none.trials  # type: ignore[attr-defined]
    assert asha.epochs / asha.trials < none.epochs / none.trials  # type: ignore[attr-defined]
    assert none.epochs <= budget_of("mfh3_good", 4, 1.5) / 10 / 0.9 + 4  # type: ignore[attr-defined]


def test_a_seed_repeats_its_run_exactly() -> None:
    first = _runs(("optfleet_median", "tpe_median"), seed=3)
    again = _runs(("optfleet_median", "tpe_median"), seed=3)
    for method in first:
        assert first[method].finals == again[method].finals  # type: ignore[attr-defined]
        assert first[method].finals  # type: ignore[attr-defined]


def test_the_servers_defaults_and_the_published_hartmann() -> None:
    policy = server_policy("asha", 27)
    assert (policy.grace_step, policy.reduction_factor, policy.min_runs) == (1, 3, 5)
    # At full fidelity MF-Hartmann is Hartmann-3 (minimum -3.86278), noise and bias gone.
    optimum = np.array([0.114614, 0.555649, 0.852547])
    value = mf_hartmann(optimum, 100.0, bias=2.5, noise=2.0, rng=np.random.default_rng(0))
    assert abs(value + 3.86278) < 1e-4
    assert MFH3_GOOD.max_epochs == 27 and set(PROBLEMS) >= {"sgd_wine", "mlp_breast_cancer"}


def test_the_report_names_targets() -> None:
    runs = run_all(["sgd_wine"], ["optfleet", "optfleet_asha"], [0], workers=2, full_runs=1.2)
    args = argparse.Namespace(workers=2, full_runs=1.2, seeds=1)
    text = report(runs, ["sgd_wine"], ["optfleet", "optfleet_asha"], args, 1.0)
    assert "optfleet + ASHA" in text and "target" in text


def test_runs_saved_compressed_are_reported_again_from_one_commit(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import json

    from benchmarks.bench_learning_curves import load_runs, main

    saved = tmp_path / "runs.jsonl.gz"
    runs = run_all(["mfh3_good"], ["optfleet"], [0, 1], workers=2, full_runs=1.2, json_path=saved)
    assert [r.finals for r in load_runs(saved)] == [r.finals for r in runs]
    with gzip.open(saved, "rt") as f:
        lines = [json.loads(line) for line in f]
    assert len({line["commit"] for line in lines}) == 1  # HEAD at the start, for every run
    argv = ["--report-only", str(saved), "--problems", "mfh3_good", "--methods", "optfleet"]
    assert main([*argv, "--no-write", "--workers", "2", "--full-runs", "1.2"]) == 0
    assert "seeds 0, 1" in capsys.readouterr().out
    lines[0]["commit"] = "0000000"
    with gzip.open(saved, "wt") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    assert main([*argv, "--no-write"]) == 2
    assert main([*argv, "--no-write", "--allow-mixed-commits"]) == 0


def test_development_problems_and_variants_stay_out_of_the_reported_set() -> None:
    from benchmarks.lc_fleet import DEV_METHODS, METHODS
    from benchmarks.lc_problems import DEV_PROBLEMS

    assert DEV_PROBLEMS and not set(DEV_PROBLEMS) & set(PROBLEMS)
    assert DEV_METHODS and not set(DEV_METHODS) & set(METHODS)


def test_a_variants_settings_do_not_leak_into_the_next_run() -> None:
    from benchmarks.lc_fleet import OptfleetMethod
    from suggestion_server.optimizer.gp import proposer, safeguards

    OptfleetMethod(MFH3_GOOD, 0, "asha", {"stopped_values": "worst"})
    assert proposer.ProposerSettings().stopped_values == "worst"
    OptfleetMethod(MFH3_GOOD, 0, "asha")
    assert proposer.ProposerSettings() == safeguards.ProposerSettings()
