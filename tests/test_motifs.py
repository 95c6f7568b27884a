"""The synthetic task knows its ceiling: the exact Bayes posterior against brute force, events
that never overlap, new data each epoch, the ceiling on every run, the conv baseline."""

import itertools

import keras
import numpy as np
import pytest

from harness import batches, data, models, runner
from harness.config import ConfigError, check_report, parse_target


def brute_posterior(x, motifs, events, length, amplitude):
    """P(class 1 | x) by enumerating every placement of the events that do not overlap and
    every choice of motifs, each equally likely a priori, with the Gaussian likelihood."""
    steps, half = x.shape[0], len(motifs) // 2
    logs = {0: [], 1: []}
    for starts in itertools.combinations(range(steps - length + 1), events):
        if any(b - a < length for a, b in zip(starts, starts[1:])):
            continue
        for chosen in itertools.product(range(len(motifs)), repeat=events):
            mean = np.zeros_like(x)
            for start, motif in zip(starts, chosen):
                mean[start:start + length] += amplitude * motifs[motif]
            label = int(sum(m < half for m in chosen) > events // 2)
            logs[label].append(-0.5 * ((x - mean) ** 2).sum())
    ones, zeros = np.logaddexp.reduce(logs[1]), np.logaddexp.reduce(logs[0])
    return 1 / (1 + np.exp(zeros - ones))


@pytest.mark.parametrize("steps,events,length,num_motifs", [
    (7, 3, 2, 4), (6, 1, 3, 2), (9, 3, 1, 4), (10, 3, 3, 2), (8, 1, 8, 4),
])
def test_the_posterior_is_the_brute_force_one(steps, events, length, num_motifs):
    rng = np.random.default_rng(steps * 100 + length)
    motifs = rng.standard_normal((num_motifs, 2))
    motifs /= np.linalg.norm(motifs, axis=1, keepdims=True)
    x, _ = data.motif_sequences(6, timesteps=steps, features=2, motifs=motifs, events=events,
                                event_length=length, amplitude=1.3, rng=rng)
    exact = data.motif_posterior(x, motifs=motifs, events=events, event_length=length,
                                 amplitude=1.3)
    brute = [brute_posterior(sequence.astype(float), motifs, events, length, 1.3)
             for sequence in x]
    np.testing.assert_allclose(exact, brute, rtol=1e-9, atol=1e-12)


def test_events_never_overlap_and_every_placement_is_drawn_alike():
    rng = np.random.default_rng(0)
    starts = data.event_starts(12_000, timesteps=7, events=3, event_length=2, rng=rng)
    assert (np.diff(starts, axis=1) >= 2).all() and starts.min() >= 0 and starts.max() <= 5
    placements, counts = np.unique(starts, axis=0, return_counts=True)
    assert [tuple(p) for p in placements] == [(0, 2, 4), (0, 2, 5), (0, 3, 5), (1, 3, 5)]
    assert counts.min() > 0.9 * 3000 and counts.max() < 1.1 * 3000


def test_the_ceiling_comes_with_the_data_and_bounds_a_good_model():
    splits = data.motifs_splits(timesteps=100, train_size=200, val_size=100, test_size=2000)
    ceiling = splits.ceiling
    assert 0.5 < ceiling["bayes_accuracy_low"] < ceiling["bayes_accuracy"] \
        < ceiling["bayes_accuracy_high"] < 1
    # the Bayes classifier's score on these labels lies near its expected accuracy
    assert abs(ceiling["bayes_test_accuracy"] - ceiling["bayes_accuracy"]) < 0.04
    # a matched filter that knows the motifs (not their places) is a classifier: no better
    motifs = np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32)
    motifs /= np.linalg.norm(motifs, axis=1, keepdims=True)
    window = np.cumsum(np.einsum("ntf,mf->ntm", splits.x_test, motifs), axis=1)
    strength = np.maximum(window[:, 10:] - window[:, :-10], 0).max(axis=1)
    guess = (strength[:, :4].sum(1) > strength[:, 4:].sum(1)).astype(np.uint8)
    assert 0.6 < (guess == splits.y_test).mean() < ceiling["bayes_test_accuracy"]


def test_events_that_cannot_fit_are_a_one_line_error():
    with pytest.raises(data.DataError, match="data.events × data.event_length"):
        data.check_settings("motifs", {"timesteps": 40, "events": 5, "event_length": 10})
    with pytest.raises(data.DataError, match="data.fresh_each_epoch"):
        data.check_settings("motifs", {"timesteps": 100, "fresh_each_epoch": "yes"})


def test_fresh_data_differs_per_epoch_and_repeats_per_seed():
    splits = data.motifs_splits(timesteps=60, train_size=300, val_size=100, test_size=200,
                                fresh_each_epoch=True)
    stream = batches.TrainingBatches(splits.x_train, splits.y_train, [4], 128, 3, False,
                                     draw=splits.draw_train)
    first, second, third = (stream.epoch_data(epoch) for epoch in range(3))
    assert first[0] is splits.x_train  # the first epoch is the split's own set
    assert second[0].shape == splits.x_train.shape
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(second[0], third[0])
    np.testing.assert_array_equal(splits.draw_train(4, 1)[0], second[0])  # again, the same
    assert not np.array_equal(splits.draw_train(5, 1)[0], second[0])  # another seed, other data
    fixed = data.motifs_splits(timesteps=60, train_size=300, val_size=100, test_size=200)
    assert fixed.draw_train is None
    # both pipelines give batch b of epoch e as the epoch's own draw in the (seed, epoch) order
    def expected(index):
        epoch, batch = divmod(index, stream.batches_per_epoch)
        x, y = (splits.x_train, splits.y_train) if epoch == 0 else splits.draw_train(4, epoch)
        pick = batches.batch_order(4, epoch, len(y))[batch * 128:(batch + 1) * 128]
        return x[pick], y[pick]

    for index in range(stream.num_batches):
        for got, want in zip(stream[index], expected(index)):
            np.testing.assert_array_equal(got, want)
    for index, (x, y) in enumerate(stream.as_tf_dataset()):
        want_x, want_y = expected(index)
        np.testing.assert_array_equal(x.numpy(), want_x)
        np.testing.assert_array_equal(y.numpy(), want_y)
    assert index == stream.num_batches - 1


def test_test_and_validation_sets_do_not_move_with_the_training_data():
    """Every amount of training data is scored on the same test set (one ceiling per motif
    draw), and a smaller training set is the start of a larger one."""
    small = data.motifs_splits(timesteps=60, train_size=300, val_size=100, test_size=200)
    large = data.motifs_splits(timesteps=60, train_size=1200, val_size=100, test_size=200,
                               fresh_each_epoch=True)
    np.testing.assert_array_equal(small.x_test, large.x_test)
    np.testing.assert_array_equal(small.x_val, large.x_val)
    np.testing.assert_array_equal(small.x_train, large.x_train[:300])
    assert not np.array_equal(small.x_val, small.x_train[:100])  # each set its own stream
    assert not np.array_equal(small.x_test[:100], small.x_val)
    assert small.ceiling == large.ceiling
    with pytest.raises(ValueError):  # the shared test set is read-only
        small.x_test[0, 0, 0] = 1.0
    other = data.motifs_splits(timesteps=60, train_size=300, val_size=100, test_size=200, seed=1)
    assert not np.array_equal(other.x_test, small.x_test) and other.ceiling != small.ceiling


def motif_config(**data_settings) -> dict:
    return {
        "data": {"name": "motifs", "timesteps": 60, "train_size": 200, "val_size": 100,
                 "test_size": 300, "label_noise": 0.0, "seed": 3, **data_settings},
        "model": {"cell": "lstm", "units": 4},
        "train": {"batch_size": 64, "epochs": 2, "learning_rate": 0.01},
        "seed": 0, "device": "cpu", "backend": keras.backend.backend(),
    }


def test_every_motif_run_logs_its_ceiling():
    result = runner.train(motif_config(fresh_each_epoch=True))
    metrics, params = result["metrics"], result["params"]
    splits = data.load_splits("motifs", **data.settings(motif_config(fresh_each_epoch=True)["data"]))
    for name, value in splits.ceiling.items():
        assert metrics[name] == value
    assert params["motifs_seed"] == 3 and params["fresh_each_epoch"] == 1
    assert "bayes_accuracy" not in runner.train({
        **motif_config(), "data": {"name": "mnist", "label_noise": 0.0, "train_size": 200,
                                   "val_size": 100}})["metrics"]


def test_conv_baseline_counts_its_weights():
    for units, width, inputs in ((1, 10, 12), (64, 10, 12), (5, 3, 28)):
        model = models.build_model(cell="conv", units=units, timesteps=50, input_dim=inputs,
                                   num_classes=2, width=width)
        assert model.count_params() == models.param_count("conv", units, inputs, 2, width)
    assert "u·(w·i+1) = 64·(10·12+1)" in models.explain(
        cell="conv", units=64, timesteps=820, input_dim=12, num_classes=2)


def test_a_target_of_the_ceiling():
    assert parse_target(0.9) == (0.9, False)
    assert parse_target("0.95 of bayes") == (0.95, True)
    for bad in ("0.95 of chance", "1.5 of bayes", "of bayes", True):
        with pytest.raises(ConfigError, match="report.target"):
            check_report({"target": bad})


def motif_summary(rows) -> "pd.DataFrame":
    """A summary of the synthetic task: (units, fresh, train_size, test accuracy, its seed
    range, best epoch) per row, ceiling 0.8, 40 epochs allowed."""
    import pandas as pd

    return pd.DataFrame([
        {"units": units, "cell": "lstm", "timesteps": 200, "train_size": size,
         "fresh_each_epoch": fresh, "motifs_seed": 0, "epochs": 40,
         "param_count": 4 * units * (12 + units + 1) + 2 * (units + 1),
         "test_accuracy_mean": accuracy, "test_accuracy_ci_low": accuracy - spread,
         "test_accuracy_ci_high": accuracy + spread, "best_epoch_mean": best - 1,
         "train_accuracy_mean": 0.9, "bayes_accuracy_mean": 0.8, "bayes_test_accuracy_mean": 0.8,
         "epochs_trained_mean": 40}
        for units, fresh, size, accuracy, spread, best in rows])


def test_what_holds_a_model_back():
    from harness.analyses import held_back

    lines = held_back(motif_summary([
        (1, 1, 4000, 0.505, 0.01, 12),   # at chance with new data
        (4, 1, 4000, 0.65, 0.005, 15),   # peaked early; 16 and 64 units beyond its range
        (4, 0, 4000, 0.60, 0.005, 10),   # its fixed set: data holds it back too
        (16, 1, 4000, 0.70, 0.005, 39),  # best epoch among the last five
        (64, 1, 4000, 0.78, 0.005, 20),  # within 5% of the ceiling
    ]))
    text = dict(line.strip("- ").split("**: ", 1) for line in lines[1:])
    assert text["**LSTM(1)"].endswith("it does not learn the task with this recipe, even with "
                                       "new data every epoch.")
    assert "held back by units" in text["**LSTM(4)"] and "LSTM(16) does better" in text["**LSTM(4)"]
    assert "data holds back its fixed sets (75% at best, +6% with new data)" in text["**LSTM(4)"]
    assert "held back by training" in text["**LSTM(16)"]
    assert "nothing much holds it back" in text["**LSTM(64)"]
    # the same early peak with no larger model beyond the seed ranges: the recipe, not units
    recipe = held_back(motif_summary([(4, 1, 4000, 0.65, 0.05, 15), (16, 1, 4000, 0.68, 0.05, 15)]))
    assert "held back by this recipe" in recipe[1]


def test_sizes_and_weights_it_cannot_honour_are_one_line_errors():
    from harness.config import check_config

    with pytest.raises(data.DataError, match=r"^data.test_size: 1 is not allowed"):
        data.check_settings("motifs", {"timesteps": 100, "test_size": 1})
    with pytest.raises(data.DataError, match=r"^data.val_size: 0 is not allowed"):
        data.check_settings("motifs", {"timesteps": 100, "val_size": 0})
    stops = {**motif_config(), "report": {"weights": "last"},
             "train": {"batch_size": 64, "epochs": 5, "learning_rate": 0.01, "patience": 2}}
    with pytest.raises(ConfigError, match=r"^report.weights: last needs every epoch trained"):
        check_config(stops)
    check_config({**stops, "train": {**stops["train"], "patience": 5}})  # marks, never stops


def test_conv_settings_it_cannot_run_are_one_line_errors():
    from harness.config import check_config

    config = {**motif_config(), "model": {"cell": "conv", "units": 8, "width": 61}}
    with pytest.raises(ConfigError, match=r"^model.width: 61 is not allowed; use an integer in 1..60"):
        check_config(config)
    table = {**config, "data": {"name": "table", "path": "docs/examples/vowels.csv",
                                "label_noise": 0.0}, "model": {"cell": "conv", "units": 8}}
    with pytest.raises(ConfigError, match="^model: conv takes series of one length"):
        check_config(table)
    check_config({**config, "model": {"cell": "conv", "units": 8, "width": 60}})
