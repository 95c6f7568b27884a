"""A real Hydra multirun of the smoke study into a temporary SQLite store, checked through
what MLflow holds."""

import pytest
import yaml

from harness.models import param_count

PARAMS = {
    "units", "cell", "dataset", "timesteps", "input_dim", "num_classes", "batch_size",
    "epochs", "learning_rate", "seed", "train_size", "label_noise",
}
UNIT_METRICS = {
    "test_accuracy", "train_accuracy", "best_val_accuracy",
}
METRICS = UNIT_METRICS | {
    "param_count", "test_loss", "train_loss", "generalization_gap", "best_epoch",
    "train_time_s", "epoch_time_s", "samples_per_s",
}


def test_one_parent_with_finished_children(smoke):
    result, client, runs, _ = smoke
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)
    assert {(r.data.params["units"], r.data.params["seed"]) for r in children} == {
        ("4", "0"), ("4", "1"), ("16", "0"), ("16", "1")
    }
    assert len({r.data.tags["run_key"] for r in children}) == 4
    assert all(r.data.tags["study"] == "smoke" for r in runs)
    # No GPU in the tests: the LSTM runs TensorFlow's fused CPU kernel (harness/fused.py).
    assert {(r.data.tags["device"], r.data.tags["kernel"], r.data.tags["cudnn"])
            for r in children} == {("cpu", "block_lstm", "false")}
    assert "[4/4] model.units=16 seed=1: test_accuracy" in result.stdout  # progress, one line per job
    assert "ETA 0.0 min)" in result.stdout  # after the last job


def test_params_metrics_and_curves(smoke):
    _, client, runs, _ = smoke
    for run in (r for r in runs if "mlflow.parentRunId" in r.data.tags):
        params, metrics = run.data.params, run.data.metrics
        assert PARAMS <= set(params)
        assert METRICS <= set(metrics)
        assert params["dataset"] == "mnist" and params["train_size"] == "2000"
        assert (params["timesteps"], params["input_dim"], params["num_classes"]) == ("28", "28", "10")
        assert metrics["param_count"] == param_count("lstm", int(params["units"]), 28, 10)
        for name in UNIT_METRICS:
            assert 0.0 <= metrics[name] <= 1.0
        gap = metrics["train_accuracy"] - metrics["test_accuracy"]
        assert metrics["generalization_gap"] == pytest.approx(gap)
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(run.info.run_id, name)
            assert sorted(m.step for m in history) == [0, 1]  # step = epoch
        path = client.download_artifacts(run.info.run_id, "config.yaml")
        with open(path) as file:
            config = yaml.safe_load(file)
        assert config["model"]["units"] == int(params["units"]) and config["study"] == "smoke"


def test_models_learn(smoke):
    # 2000 real images and two epochs are enough to beat chance (10%) clearly at 16 units.
    _, _, runs, _ = smoke
    sixteen = [r.data.metrics["test_accuracy"] for r in runs if r.data.params.get("units") == "16"]
    assert min(sixteen) > 0.3


def test_sweep_ends_with_the_answer(smoke):
    """The sweep writes the study's report itself and its last lines are the Answer."""
    result, _, _, store = smoke
    report = store.parent / "reports" / "smoke" / "report.md"
    assert sorted(p.name for p in report.parent.iterdir()) == [
        "capacity.png", "overfitting.png", "report.md", "summary.csv"
    ]
    answer = report.read_text().split("## Answer\n\n")[1].split("\n\n")[0]
    assert answer.startswith("- ")
    assert result.stdout.rstrip().endswith(f"{answer}\nreport: {report}")


def test_the_ui_tells_the_story(smoke):
    """The experiment's description is the question; the parent's is the report, with the plots
    as artifacts; every child run has its training set as a dataset input."""
    _, client, runs, store = smoke
    experiment = client.get_experiment_by_name("smoke")
    assert experiment.tags["mlflow.note.content"].startswith(
        "**Does the whole chain work — real MNIST")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    note = client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    # The latest report of the study (another test may re-report it) is attached and described.
    attached = client.download_artifacts(parent.info.run_id, "report/report.md")
    with open(attached) as file:
        answer = file.read().split("## Answer\n\n")[1].split("\n\n")[0]
    question = "**Does the whole chain work — real MNIST"  # then the Answer, no heading
    assert answer.startswith("- ") and note.startswith(question) and f"**\n\n{answer}" in note
    assert f"get-artifact?path=report%2Fcapacity.png&run_uuid={parent.info.run_id}" in note
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/capacity.png" in logged and "report/report.md" in logged
    for run in (r for r in runs if "mlflow.parentRunId" in r.data.tags):
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["mnist-28x28-n2000"]
        assert inputs[0].dataset.digest
        assert '"features_shape": [2000, 28, 28]' in inputs[0].dataset.profile


def test_quiet_console(smoke):
    """No TensorFlow C++ start-up lines, no Hydra job listing, no Keras epoch lines on the
    console: the epoch lines are in each job's log file."""
    result, _, _, store = smoke
    console = result.stdout + result.stderr
    for noise in ("cuInit", "cudart_stub", "absl::InitializeLog", "oneDNN", "[HYDRA]",
                  "Epoch 1/2", "INFO mlflow"):
        assert noise not in console
    logs = list((store.parent / "hydra").glob("*/*.log"))
    assert len(logs) == 4 and all("Epoch 2/2" in log.read_text() for log in logs)


def test_jobs_composed_once_per_group_choice_equal_hydras_own():
    """The sweep composes each choice of config groups once and applies the value overrides
    itself (composition.composed_jobs): every job's config equals the one Hydra composes for it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from harness import compose as composition

    jobs = [
        ["model=gru", "model.units=4", "seed=1"],
        ["model=lstm", "model.units=8", "seed=2", "data.train_size=300"],
        ["model=gru", "model.units=16", "seed=0", "train.epochs=3"],
        ["data=motifs", "budget=n1000", "model.units=4", "seed=5"],
    ]
    with initialize_config_dir(config_dir=str(composition.CONF), version_base="1.3"):
        master = compose("config", return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        expected = []
        for overrides in jobs:
            composed = loader.load_sweep_config(master, overrides)
            HydraConfig.instance().set_config(composed)
            expected.append(composition.job_config(composed))
        assert composition.composed_jobs(master, jobs) == expected
    assert [job["model"]["cell"] for job in expected] == ["gru", "lstm", "gru", "lstm"]
    assert expected[1]["data"]["train_size"] == 300 and expected[3]["data"]["name"] == "motifs"


def test_parallel_workers_compose_each_group_choice_once_as_hydra_would():
    """The parallel launcher's loader (hydra_plugins/harness_launcher/parallel.py) gives every
    job the config Hydra's own loader composes for it, hydra node included (its overrides and
    override_dirname, which name the job's run and folder), composing each choice of groups
    once."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra_plugins.harness_launcher import parallel
    from omegaconf import OmegaConf

    from harness import compose as composition

    jobs = [
        ["model.units=8", "seed=2", "jobs=2", "force=false"],
        ["model.units=4", "seed=0", "jobs=2", "force=false"],
        ["model=gru", "model.units=16", "seed=1", "train.epochs=3"],
        ["model.units=8", "seed=3", "data.train_size=300", "jobs=2", "force=false"],
        ["data=motifs", "budget=n1000", "model.units=4", "seed=5"],
    ]
    composition._worker_compositions.clear()
    with initialize_config_dir(config_dir=str(composition.CONF), version_base="1.3"):
        master = compose("config", return_hydra_config=True)
        hydras = GlobalHydra.instance().config_loader()
        ours = parallel.ComposingOnceLoader(hydras.get_search_path())
        for overrides in jobs:
            expected = hydras.load_sweep_config(master, overrides)
            got = ours.load_sweep_config(master, overrides)
            assert OmegaConf.to_container(got) == OmegaConf.to_container(expected)
            assert OmegaConf.is_struct(got) == OmegaConf.is_struct(expected)
            assert got.hydra.overrides.task == overrides
    assert len(composition._worker_compositions) == 3  # no groups chosen; model=gru; data=motifs budget=n1000
    assert OmegaConf.to_container(got)["data"]["name"] == "motifs"
    assert [OmegaConf.to_container(c)["model"]["cell"] for c in composition._worker_compositions.values()] == [
        "lstm", "gru", "lstm"]


def test_race_plan_groups_by_overrides_and_picks_on_validation():
    """A race's configurations are the jobs whose overrides differ only in seed and the raced
    setting — also where data.seed follows the seed (units_mnist_tuned) —; the smallest seeds
    of every candidate race, and the winner is the best mean on them (a tie to the smallest
    setting), a candidate with a missing or NaN first run out; a setting with nothing to race
    against is refused."""
    from harness.compose import study_jobs
    from harness.config import ConfigError, run_key
    from harness.plan import race_candidates, race_plan
    from harness.selection import race_choice

    overrides = ["model.units=4,8", "train.learning_rate=0.03,0.001,0.01", "seed=2,0,1"]
    configs = study_jobs("units_mnist_tuned", overrides)
    jobs = [[f"model.units={c['model']['units']}", f"train.learning_rate={c['train']['learning_rate']}",
             f"seed={c['seed']}"] for c in configs]
    assert len({c["data"]["seed"] for c in configs}) == 3  # the split follows the seed
    assert all(c["report"]["race_seeds"] == 2 for c in configs)
    plan = race_plan(configs, jobs)
    assert len(plan) == 2 and all(len(group) == 3 for group in plan)
    for group in plan:
        for candidate in group:
            firsts = [configs[n] for n in candidate["first"]]
            rests = [configs[n] for n in candidate["rest"]]
            assert sorted(c["seed"] for c in firsts) == [0, 1] and [c["seed"] for c in rests] == [2]
            assert len({(c["model"]["units"], c["train"]["learning_rate"])
                        for c in firsts + rests}) == 1
    keys = [run_key(c) for c in configs]
    group = plan[0]  # learning rates 0.03, 0.001, 0.01 in the sweep's order
    scores = {keys[n]: 0.5 for candidate in group for n in candidate["first"]}
    assert race_choice(race_candidates(group, configs, keys, scores), 2) == 1  # tie: 0.001
    scores[keys[group[2]["first"][0]]] = 0.9  # 0.01: best on one of seeds 0 and 1
    assert race_choice(race_candidates(group, configs, keys, scores), 2) == 2
    del scores[keys[group[2]["first"][1]]]  # its other first run failed: it cannot win
    assert race_choice(race_candidates(group, configs, keys, scores), 2) == 1
    scores[keys[group[1]["first"][0]]] = float("nan")  # a NaN score is no score
    assert race_choice(race_candidates(group, configs, keys, scores), 2) == 0
    assert race_choice(race_candidates(group, configs, keys, {}), 2) is None
    no_race = [{**c, "report": {**c["report"], "race_seeds": 0}} for c in configs]
    assert race_plan(no_race, jobs) is None
    one = study_jobs("units_mnist_tuned", ["model.units=4", "train.learning_rate=0.01", "seed=0,1,2"])
    with pytest.raises(ConfigError, match="^report.race_seeds: 2, but the jobs model.units=4"):
        race_plan(one, [[f"model.units=4", "train.learning_rate=0.01", f"seed={c['seed']}"]
                        for c in one])
