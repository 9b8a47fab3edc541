"""hapo-plot on synthetic run folders whose numbers are known."""

import csv
import logging

import numpy as np
import pytest
import scipy.stats
from matplotlib import image
from rliable import library as rly
from rliable import metrics as rly_metrics

from hapo import config
from hapo.config import Config
from hapo.experiments import plot

REPS = 400
COLUMNS = ["iteration", "env_steps", "train_return", "eval_return", "actor/kl"]


def write_run(folder, overrides, eval_values, eval_every=2, steps_per_iteration=1000):
    """A run folder: config.yaml from Config() with overrides, and a metrics.csv whose eval_return
    takes eval_values[k] at iteration (k + 1) * eval_every and is empty elsewhere."""
    folder.mkdir(parents=True)
    config.save(Config().with_overrides(["run.progress=false", *overrides]), folder / "config.yaml")
    iterations = len(eval_values) * eval_every
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(1, iterations + 1):
            value = eval_values[i // eval_every - 1] if i % eval_every == 0 else ""
            writer.writerow([i, i * steps_per_iteration, 0.5 * i, value, 0.01])
    return folder


def cheetah(seed, *extra):
    return ["env.scenario=HalfCheetah", "env.agent_conf=2x3", f"run.seed={seed}", *extra]


@pytest.fixture
def sweep(tmp_path):
    """Two HalfCheetah 2x3 HAPPO sweeps that differ in env.obs_mode (and in bookkeeping keys),
    HATRPO on the same task, and HAPPO on Ant 4x2. Returns the root and the final evals per group."""
    root = tmp_path / "results"
    finals = {
        "HalfCheetah 2x3 happo (env.obs_mode=local)": [1000.0, 1500.0, 1200.0, 3000.0, 1100.0],
        "HalfCheetah 2x3 happo (env.obs_mode=global)": [2000.0, 2500.0, 2300.0],
        "HalfCheetah 2x3 hatrpo": [1800.0, 1700.0, 1900.0],
        "Ant 4x2 happo (env.obs_mode=local)": [400.0, 600.0],
    }
    for seed, final in enumerate(finals["HalfCheetah 2x3 happo (env.obs_mode=local)"], start=1):
        write_run(root / "local" / "deep" / f"s{seed}", cheetah(seed, "run.log_dir=a", f"run.run_name=l{seed}", f"env.num_threads={seed}"),
                  [final / 4, final / 2, final])
    for seed, final in enumerate(finals["HalfCheetah 2x3 happo (env.obs_mode=global)"], start=1):
        write_run(root / "global" / f"s{seed}", cheetah(seed, "env.obs_mode=global", "run.log_dir=b", "run.eval_interval=2"),
                  [final / 4, final / 2, final])
    for seed, final in enumerate(finals["HalfCheetah 2x3 hatrpo"], start=1):
        write_run(root / "hatrpo" / f"s{seed}", cheetah(seed, "algo.name=hatrpo"), [final / 2, final])
    for seed, final in enumerate(finals["Ant 4x2 happo (env.obs_mode=local)"], start=1):
        write_run(root / "ant" / f"s{seed}", ["env.scenario=Ant", "env.agent_conf=4x2", f"run.seed={seed}"], [final / 2, final])
    return root, finals


@pytest.fixture
def reference(tmp_path):
    path = tmp_path / "published.csv"
    path.write_text("scenario,agent_conf,algo,value,source\n"
                    "HalfCheetah,2x3,happo,2000,paper\nHalfCheetah,2x3,hatrpo,1600,paper\nAnt,4x2,happo,500,paper\n")
    return path


def test_runs_are_found_at_any_depth_and_grouped_by_the_keys_that_differ(sweep):
    root, finals = sweep
    runs = plot.find_runs([root, root / "ant"])  # a folder given twice counts once
    assert len(runs) == 13
    groups = plot.group_runs(runs)
    assert list(groups) == sorted(finals, key=lambda label: (label.split()[0] != "Ant", label))
    for label, group in groups.items():
        assert [run.seed for run in group.runs] == list(range(1, len(finals[label]) + 1))
        assert label == f"{plot.task_name(group.task)} {group.method}"
    local = groups["HalfCheetah 2x3 happo (env.obs_mode=local)"]
    assert local.setting == {"env.obs_mode": "local"} and local.algo == "happo" and local.task == ("HalfCheetah", "2x3")
    # Keys that differ only between sweeps' bookkeeping or between algorithms do not split or label.
    assert groups["HalfCheetah 2x3 hatrpo"].setting == {}

    merged = plot.group_runs(runs, ignore=["env.obs_mode"])
    assert sorted(merged) == ["Ant 4x2 happo", "HalfCheetah 2x3 happo", "HalfCheetah 2x3 hatrpo"]
    assert len(merged["HalfCheetah 2x3 happo"].runs) == 8


def test_a_differing_model_key_splits_and_labels_with_its_value(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path / f"a{seed}", cheetah(seed, "model.hidden_sizes=[64, 64]", "algo.clip=0.1"), [1.0])
        write_run(tmp_path / f"b{seed}", cheetah(seed, "algo.clip=0.1"), [2.0])
    groups = plot.group_runs(plot.find_runs([tmp_path]))
    assert sorted(groups) == ["HalfCheetah 2x3 happo (model.hidden_sizes=[128, 128, 128])",
                              "HalfCheetah 2x3 happo (model.hidden_sizes=[64, 64])"]


def test_final_scores_mean_std_and_iqm_with_rliables_interval(sweep):
    root, finals = sweep
    groups = plot.group_runs(plot.find_runs([root]))
    group = groups["HalfCheetah 2x3 happo (env.obs_mode=local)"]
    expected = np.array(finals[group.label])

    scores, steps = plot.final_scores(group, "eval_return")
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(steps, [6000] * 5)
    window, _ = plot.final_scores(group, "eval_return", window=2)
    np.testing.assert_allclose(window, (expected + expected / 2) / 2)

    state = np.random.get_state()
    rows = plot.summary_table(groups, "eval_return", reps=REPS, seed=3)
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global RNG is put back
    row = rows[list(groups).index(group.label)]
    assert (row.group, row.seeds, row.final_env_steps, row.published, row.ratio) == (group.label, 5, (6000, 6000), None, None)
    assert row.mean == pytest.approx(expected.mean())
    assert row.std == pytest.approx(np.std(expected, ddof=1))
    assert row.iqm == pytest.approx(scipy.stats.trim_mean(expected, 0.25))
    assert row.iqm != pytest.approx(row.mean)  # the outlier 3000 is trimmed

    np.random.seed(3)
    points, intervals = rly.get_interval_estimates(
        {"x": expected[:, None]}, lambda s: np.array([rly_metrics.aggregate_iqm(s)]), reps=REPS)
    assert (row.iqm, row.iqm_low, row.iqm_high) == (points["x"][0], *intervals["x"][:, 0])
    assert expected.min() <= row.iqm_low < row.iqm < row.iqm_high <= expected.max()
    assert plot.iqm_interval(expected[:, None], REPS, seed=4)[1:] != (row.iqm_low, row.iqm_high)


def test_bootstrap_band_is_a_percentile_bootstrap_over_seeds():
    values = np.random.default_rng(7).normal(size=(6, 9)) * np.arange(1, 10)
    low, high = plot.bootstrap_band(values, reps=500, seed=11)

    picks = np.random.default_rng(11).integers(0, 6, size=(500, 6))
    means = values[picks].mean(axis=1)  # [reps, n_x]
    np.testing.assert_allclose(low, np.percentile(means, 2.5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(high, np.percentile(means, 97.5, axis=0), rtol=1e-12)
    assert np.all(low < values.mean(axis=0)) and np.all(values.mean(axis=0) < high)
    assert not np.allclose(plot.bootstrap_band(values, reps=500, seed=12)[0], low)


def test_learning_curve_uses_the_env_steps_every_run_logged(tmp_path, caplog):
    write_run(tmp_path / "a", cheetah(1), [1.0, 2.0, 3.0, 4.0])
    write_run(tmp_path / "b", cheetah(2), [10.0, 20.0])
    (group,) = plot.group_runs(plot.find_runs([tmp_path])).values()
    with caplog.at_level(logging.WARNING):
        x, values = plot.learning_curve(group, "eval_return")
    np.testing.assert_array_equal(x, [2000, 4000])
    np.testing.assert_array_equal(values, [[1.0, 2.0], [10.0, 20.0]])
    assert "uses the 2 points" in caplog.text
    scores, steps = plot.final_scores(group, "eval_return")
    np.testing.assert_array_equal(scores, [4.0, 20.0])
    np.testing.assert_array_equal(steps, [8000, 4000])


def test_reference_adds_published_ratio_and_the_normalised_aggregate(sweep, reference):
    root, finals = sweep
    published = plot.load_reference(reference)
    assert published[("HalfCheetah", "2x3", "hatrpo")] == 1600.0
    groups = plot.group_runs(plot.find_runs([root]))
    rows = {row.group: row for row in plot.summary_table(groups, "eval_return", reference=published, reps=REPS)}
    hatrpo = rows["HalfCheetah 2x3 hatrpo"]
    assert hatrpo.published == 1600.0 and hatrpo.ratio == pytest.approx(1800.0 / 1600.0)
    assert rows["HalfCheetah 2x3 happo (env.obs_mode=global)"].published == 2000.0

    aggregates = {a.method: a for a in plot.aggregate_normalised(groups, "eval_return", published, reps=REPS)}
    local = aggregates["happo (env.obs_mode=local)"]
    assert local.tasks == (("Ant", "4x2"), ("HalfCheetah", "2x3")) and local.seeds == 2
    normalised = np.array([[400 / 500, 1000 / 2000], [600 / 500, 1500 / 2000]])
    assert local.iqm == pytest.approx(scipy.stats.trim_mean(normalised, 0.25, axis=None))
    assert local.iqm_low <= local.iqm <= local.iqm_high
    assert aggregates["hatrpo"].tasks == (("HalfCheetah", "2x3"),)


@pytest.mark.parametrize("text, message", [
    ("scenario,agent_conf,value\nAnt,4x2,1\n", "lacks the column(s) algo"),
    ("scenario,agent_conf,algo,value\nAnt,4x2,happo,lots\n", "line 2: value must be a finite number"),
    ("scenario,agent_conf,algo,value\nAnt,4x2,happo,1\nAnt,4x2,happo,2\n", "line 3: Ant 4x2 happo appears twice"),
])
def test_bad_reference_files_are_named(tmp_path, text, message):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(plot.PlotError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plot.load_reference(path)


def test_cli_writes_curves_tables_and_plots(sweep, reference, tmp_path, capsys):
    root, finals = sweep
    out = tmp_path / "plots"
    assert plot.main([str(root), "--out", str(out), "--reference", str(reference), "--reps", str(REPS), "--final-window", "1"]) == 0
    assert "HalfCheetah 2x3 hatrpo" in capsys.readouterr().out
    pngs = ["curve_Ant_4x2.png", "curve_HalfCheetah_2x3.png", "iqm_per_task.png", "aggregate_iqm.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(pngs + ["final.csv", "final.md"])
    for name in pngs:
        pixels = image.imread(out / name)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05  # something is drawn

    with (out / "final.csv").open(newline="") as handle:
        table = {row["group"]: row for row in csv.DictReader(handle)}
    assert sorted(table) == sorted(finals)
    local = table["HalfCheetah 2x3 happo (env.obs_mode=local)"]
    assert float(local["mean"]) == pytest.approx(np.mean(finals[local["group"]]))
    assert (local["seeds"], local["final_env_steps_max"], local["published"]) == ("5", "6000", "2000.0")
    assert float(local["ratio"]) == pytest.approx(np.mean(finals[local["group"]]) / 2000)
    markdown = (out / "final.md").read_text()
    assert "| HalfCheetah 2x3 hatrpo | 3 | 1800 | 100 |" in markdown and "| published | ratio |" in markdown

    # The published lines change the task's curve picture; the same seed gives the same picture.
    again = tmp_path / "again"
    plot.main([str(root), "--out", str(again), "--reps", str(REPS)])
    plain = tmp_path / "plain"
    plot.main([str(root), "--out", str(plain), "--reps", str(REPS)])
    assert (again / "curve_Ant_4x2.png").read_bytes() == (plain / "curve_Ant_4x2.png").read_bytes()
    assert (out / "curve_Ant_4x2.png").read_bytes() != (plain / "curve_Ant_4x2.png").read_bytes()
    assert "published" not in (plain / "final.csv").read_text()


def write_timing(folder, seconds, steps_per_iteration=1000):
    """timing.csv as a run writes it, with seconds[i] = (collect, update, eval) of iteration i + 1."""
    with (folder / "timing.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iteration", "env_steps", "collect_seconds", "update_seconds", "eval_seconds", "env_steps_per_second"])
        for i, (collect, update, evaluate) in enumerate(seconds, start=1):
            writer.writerow([i, i * steps_per_iteration, collect, update, evaluate, steps_per_iteration / (collect + update + evaluate)])


def test_wall_clock_per_group_comes_from_the_runs_timing_files(tmp_path):
    rng = np.random.default_rng(0)
    seconds = {}
    for seed in (1, 2, 3):
        folder = write_run(tmp_path / "happo" / f"s{seed}", cheetah(seed), [1.0, 2.0])  # 4 iterations of 1000 steps
        seconds[seed] = rng.uniform(10.0, 600.0, (4, 3))
        seconds[seed][::2, 2] = 0.0  # evaluation every other iteration
        write_timing(folder, seconds[seed])
    write_run(tmp_path / "hatrpo" / "s1", cheetah(1, "algo.name=hatrpo"), [1.0])  # no timing.csv: no row

    (row,) = plot.throughput_table(plot.group_runs(plot.find_runs([tmp_path])))
    totals = np.array([seconds[seed].sum() for seed in (1, 2, 3)])
    assert row.group == "HalfCheetah 2x3 happo"
    np.testing.assert_allclose(row.minutes, totals / 60)
    assert row.env_steps_per_second == pytest.approx(np.median(4000 / totals))
    np.testing.assert_allclose(row.shares, np.stack(list(seconds.values())).sum(axis=(0, 1)) / totals.sum())

    out = tmp_path / "out"
    result = plot.report([tmp_path], out, reps=REPS)
    assert result.throughput == [row]
    wall_clock = (out / "final.md").read_text().split("## Wall clock")[1]
    minutes = ", ".join(f"{m:.0f}" for m in totals / 60)
    shares = " / ".join(f"{100 * share:.0f}%" for share in row.shares)
    assert f"| HalfCheetah 2x3 happo | {minutes} | {np.median(4000 / totals):.3g} | {shares} |" in wall_clock
    assert "hatrpo" not in wall_clock


def test_empty_metric_runs_are_skipped_with_a_warning(tmp_path, caplog):
    write_run(tmp_path / "a", cheetah(1), [5.0])
    write_run(tmp_path / "never_evaluated", cheetah(2), [""])
    starting = write_run(tmp_path / "starting", cheetah(3), [])
    (starting / "metrics.csv").write_text("")
    with caplog.at_level(logging.WARNING):
        runs = plot.select_metric(plot.find_runs([tmp_path]), "eval_return")
    assert [run.path.name for run in runs] == ["a"]
    assert "never_evaluated: its eval_return column is empty" in caplog.text
    assert "starting: its eval_return column is empty" in caplog.text
    with pytest.raises(plot.PlotError, match="empty in every run"):
        plot.select_metric(plot.find_runs([tmp_path / "never_evaluated"]), "eval_return")


@pytest.mark.parametrize("case, message", [
    ("no_runs", "no run folders (config.yaml + metrics.csv) under"),
    ("unknown_metric", "unknown metric 'eval_retrun'; the runs' metrics.csv have: actor/kl, eval_return, train_return"),
    ("missing", "does not exist"),
    ("window", "--final-window must be >= 1"),
    ("ignore", "--ignore env.obs: not a config key"),
])
def test_cli_user_errors_exit_2_with_a_message(tmp_path, capsys, case, message):
    write_run(tmp_path / "runs" / "a", cheetah(1), [5.0])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "metrics.csv").write_text("iteration,env_steps\n")  # no config.yaml: not a run
    args = {
        "no_runs": [str(tmp_path / "empty")],
        "unknown_metric": [str(tmp_path / "runs"), "--metric", "eval_retrun"],
        "missing": [str(tmp_path / "nowhere")],
        "window": [str(tmp_path / "runs"), "--final-window", "0"],
        "ignore": [str(tmp_path / "runs"), "--ignore", "env.obs"],
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        plot.main([*args, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "hapo-plot: error: " in err and message in err.replace("\n", " ")


def test_a_run_being_written_loses_only_its_incomplete_last_line(tmp_path, caplog):
    run = write_run(tmp_path / "live", cheetah(1), [1.0, 2.0])
    with (run / "metrics.csv").open("a") as handle:
        handle.write("5,5000,2.5")
    with caplog.at_level(logging.WARNING):
        (read,) = plot.find_runs([tmp_path])
    assert "ignoring its last line" in caplog.text
    np.testing.assert_array_equal(read.metrics["env_steps"], [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(read.series("eval_return")[1], [1.0, 2.0])


def test_a_run_with_a_bad_config_is_named(tmp_path):
    run = write_run(tmp_path / "odd", cheetah(1), [1.0])
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("clip:", "clipp:"))
    with pytest.raises(plot.PlotError, match=r"run folder .*odd: unknown key algo.clipp"):
        plot.find_runs([tmp_path])
