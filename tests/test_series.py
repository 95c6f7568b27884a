"""Your own series and the UEA archive: the three file formats load to the same arrays, padding
is masked to the unpadded series' predictions, the archive's sets load offline with their own
split, and every bad file gives one line naming the key before anything runs."""

import time

import numpy as np
import pandas as pd
import pytest

from harness import data, models
from harness.compose import study_jobs
from harness.config import ConfigError, run_key
from tests.conftest import run_sweep
from tests.test_bad_input import finished_runs


def long_form(lengths, features=3, classes=("ant", "bee", "cat"), seed=0) -> pd.DataFrame:
    """Labelled series in long form, rows shuffled; values are multiples of 1/8, exact in any
    float parser and in float32."""
    rng = np.random.default_rng(seed)
    frames = []
    for series, length in enumerate(lengths):
        values = rng.integers(-40, 40, size=(length, features)) / 8
        frame = pd.DataFrame(values, columns=[f"x{j}" for j in range(features)])
        frame.insert(0, "label", classes[series % len(classes)])
        frame.insert(0, "time", np.arange(length) * 10)
        frame.insert(0, "series", series)
        frames.append(frame)
    return pd.concat(frames).sample(frac=1, random_state=seed)  # the file's row order is not time


def as_arrays(frame: pd.DataFrame):
    ordered = frame.sort_values(["series", "time"])
    x = np.stack([group[["x0", "x1", "x2"]].to_numpy() for _, group in ordered.groupby("series")])
    y = ordered.groupby("series")["label"].first().to_numpy().astype(str)
    return x, y


def same(a: data.Splits, b: data.Splits) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in
               ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")) and (
        a.num_classes == b.num_classes and a.masked == b.masked)


def test_csv_parquet_and_npz_of_the_same_series_load_to_identical_arrays(tmp_path):
    frame = long_form([12] * 30)
    frame.to_csv(tmp_path / "series.csv", index=False)
    frame.to_parquet(tmp_path / "series.parquet")
    x, y = as_arrays(frame)
    np.savez(tmp_path / "series.npz", x=x, y=y)
    loaded = [data.table_splits(path=str(tmp_path / f"series.{suffix}"), val_size=6, test_size=6)
              for suffix in ("csv", "parquet", "npz")]
    assert same(loaded[0], loaded[1]) and same(loaded[0], loaded[2])
    splits = loaded[0]
    assert splits.x_train.shape == (18, 12, 3) and splits.num_classes == 3 and not splits.masked
    assert np.bincount(splits.y_test).tolist() == [2, 2, 2]  # stratified by class
    # standardised with the training split's statistics
    assert np.allclose(splits.x_train.reshape(-1, 3).mean(axis=0), 0, atol=1e-6)
    assert np.allclose(splits.x_train.reshape(-1, 3).std(axis=0), 1, atol=1e-5)
    other = data.table_splits(path=str(tmp_path / "series.csv"), val_size=6, test_size=6, seed=1)
    assert not np.array_equal(other.y_test, splits.y_test) or not np.array_equal(
        other.x_test, splits.x_test)  # the split follows data.seed
    one = data.table_splits(path=str(tmp_path / "series.csv"), feature_columns="x1",
                            val_size=6, test_size=6)
    assert np.array_equal(one.x_train[..., 0], splits.x_train[..., 1])  # a single column by name


def test_the_file_names_its_split(tmp_path):
    frame = long_form([5] * 12)
    frame["part"] = np.where(frame["series"] < 3, "test", np.where(frame["series"] < 6, "val",
                                                                    "train"))
    frame.to_csv(tmp_path / "split.csv", index=False)
    splits = data.table_splits(path=str(tmp_path / "split.csv"), split_column="part")
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (6, 3, 3)
    assert splits.y_test.tolist() == [0, 1, 2]  # series 0, 1, 2: ant, bee, cat


def test_padding_is_masked_to_the_unpadded_series_predictions(tmp_path):
    import keras

    lengths = [3, 9, 5, 12, 7, 4, 10, 6, 8, 11, 5, 9]
    long_form(lengths).to_csv(tmp_path / "ragged.csv", index=False)
    splits = data.table_splits(path=str(tmp_path / "ragged.csv"), val_size=3, test_size=3)
    assert splits.masked and splits.timesteps == 12
    shape = dict(cell="lstm", units=5, input_dim=3, num_classes=3)
    keras.utils.set_random_seed(0)
    # the runner's CPU model: TensorFlow's fused kernel, which hands a masked layer to Keras's loop
    padded_model = models.build_model(timesteps=12, mask_value=data.PAD, fused=True, **shape)
    x = splits.x_train.copy()
    x[0, 0] = 0.0  # a real step at the training mean is not padding
    padded = padded_model.predict(x, verbose=0)
    for series, prediction in zip(x, padded):
        length = int((series != data.PAD).any(axis=1).sum())
        alone = models.build_model(timesteps=length, **shape)
        alone.set_weights(padded_model.get_weights())
        assert np.allclose(alone.predict(series[None, :length], verbose=0)[0], prediction,
                           atol=1e-6)
    unmasked = models.build_model(timesteps=12, **shape)
    unmasked.set_weights(padded_model.get_weights())
    assert not np.allclose(unmasked.predict(x, verbose=0), padded, atol=1e-3)


def test_uea_sets_load_offline_with_the_archives_split():
    assert {"JapaneseVowels", "BasicMotions", "GunPoint"} <= set(data.uea_sets())
    vowels = data.load_splits("JapaneseVowels", archive="uea", val_size=0.2, seed=0)
    assert (len(vowels.y_train), len(vowels.y_val), len(vowels.y_test)) == (216, 54, 370)
    assert vowels.num_classes == 9 and vowels.input_dim == 12 and vowels.timesteps == 29
    assert vowels.masked  # 7 to 29 steps
    lengths = (vowels.x_test != data.PAD).any(axis=2).sum(axis=1)
    assert lengths.min() == 7 and lengths.max() == 29
    for name in data.uea_sets():  # sktime's loader works with the harness's pandas
        series = data.read_uea(name)
        assert set(series.split) == {"train", "test"} and len(np.unique(series.y)) >= 2, name
    assert len(data.content_digest({"name": "JapaneseVowels", "archive": "uea"})) == 16


def test_uea_needs_sktime(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    data.uea_sets.cache_clear()
    try:
        with pytest.raises(data.DataError, match="requirements-uea.txt"):
            data.uea_files("JapaneseVowels")
    finally:
        monkeypatch.undo()
        data.uea_sets.cache_clear()


def bad_files(folder):
    """(file, overrides, key) for each bad input the issue names."""
    good = long_form([6] * 24)
    cases = []

    def case(name, frame, overrides, key):
        path = folder / name
        if isinstance(frame, pd.DataFrame):
            frame.to_csv(path, index=False)
        elif frame is not None:
            path.write_bytes(frame)
        cases.append((path, overrides, key))

    case("missing.csv", None, [], "data.path")
    case("garbage.parquet", b"not a parquet file", [], "data.path")
    case("no_label.csv", good.drop(columns="label"), [], "data.label_column")
    case("misspelt.csv", good, ["data.label_column=lable"], "data.label_column")
    case("text_feature.csv", good.assign(x1="high"), ["data.feature_columns=[x0,x1]"],
         "data.feature_columns")
    case("nan.csv", good.assign(x2=np.where(good["series"] == 4, np.nan, good["x2"])), [],
         "data.path")
    case("inf.csv", good.assign(x0=np.where(good["time"] == 30, np.inf, good["x0"])), [],
         "data.path")
    case("one_class.csv", good.assign(label="ant"), [], "data.label_column")
    case("tiny_class.csv", good.assign(label=np.where(good["series"] == 0, "dog", good["label"])),
         [], "data.label_column")
    case("ragged.csv", long_form([4, 6] * 12), ["data.mask=false"], "data.mask")
    case("no_id.csv", good.assign(series=np.where(good["time"] == 20, np.nan, good["series"])),
         [], "data.id_column")
    case("repeated_time.csv", good.assign(time=good["time"] // 20), [], "data.time_column")
    case("empty.npz", b"", [], "data.path")
    case("few.csv", good, ["data.val_size=500"], "data.val_size")
    return cases


def test_bad_files_give_one_line_naming_the_key(tmp_path):
    for path, overrides, key in bad_files(tmp_path):
        with pytest.raises(ConfigError) as error:
            study_jobs("units_table", [f"data.path={path}", *overrides])
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{key}:"), (path.name, message)


def test_the_messages_say_what_is_wrong(tmp_path):
    messages = {}
    for path, overrides, key in bad_files(tmp_path):
        with pytest.raises(ConfigError) as error:
            study_jobs("units_table", [f"data.path={path}", *overrides])
        messages[path.stem] = str(error.value)
    assert "columns found: series, time, label, x0, x1, x2" in messages["misspelt"]
    assert "'x1'" in messages["text_feature"] and "not numeric" in messages["text_feature"]
    assert "nan in 'x2'" in messages["nan"] and "(series 4)" in messages["nan"]
    assert "class 'dog' has 1 series" in messages["tiny_class"]
    assert "4 to 6 steps" in messages["ragged"]


def test_a_bad_file_stops_the_sweep_with_exit_2_and_no_run(tmp_path, store):
    for path, overrides, key in bad_files(tmp_path)[::3]:  # every third case end to end
        result = run_sweep("units_table", f"data.path={path}", *overrides, store=store)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {key}:"), result.stderr
        assert finished_runs(store) == 0 and "Epoch" not in result.stdout


def test_an_npz_sweeps_the_smoke_grid_keyed_by_its_content(tmp_path, store):
    from mlflow.tracking import MlflowClient

    x, y = as_arrays(long_form([10] * 40))
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    overrides = ["data=table", "data.train_size=null", "data.val_size=0.25", "train.epochs=3"]
    result = run_sweep("smoke", f"data.path={tmp_path / 'mine.npz'}", *overrides, store=store)
    assert result.returncode == 0, result.stderr
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("smoke")
    runs = [run for run in client.search_runs([experiment.experiment_id])
            if "mlflow.parentRunId" in run.data.tags]
    assert len(runs) == 4 and {run.info.status for run in runs} == {"FINISHED"}
    assert {(run.data.params["dataset"], run.data.params["timesteps"], run.data.params["input_dim"],
             run.data.params["num_classes"], run.data.params["train_size"]) for run in runs} == {
        ("table", "10", "3", "3", "24")}
    # the same bytes elsewhere are the same data: every run already finished
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "copy.npz").write_bytes((tmp_path / "mine.npz").read_bytes())
    again = run_sweep("smoke", f"data.path={tmp_path / 'moved' / 'copy.npz'}", *overrides,
                      store=store)
    assert again.returncode == 0 and "4 already finished" in again.stdout, again.stdout


def test_run_key_and_data_follow_the_files_content(tmp_path):
    x, y = as_arrays(long_form([4] * 24))
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    job = study_jobs("units_table", [f"data.path={path}"])[0]
    key, first = run_key(job), data.load_splits("table", **data.settings(job["data"]))
    time.sleep(0.01)  # a later modification time
    changed = x.copy()
    changed[:, 0, 0] += np.arange(len(x))  # the same path, new content
    np.savez(path, x=changed, y=y)
    assert run_key(job) != key
    again = data.load_splits("table", **data.settings(job["data"]))
    assert not np.array_equal(again.x_train, first.x_train) or not np.array_equal(
        again.x_test, first.x_test)


def test_explain_a_table_model(capsys):
    from harness import explain

    explain.main(["data=table", "data.path=docs/examples/vowels.csv", "model.units=16"])
    text = capsys.readouterr().out
    assert "LSTM(16) on 26 steps × 12 inputs, 5 classes" in text
    assert "total      1,941  (Keras count_params: 1,941)" in text
    assert "padded to 26 steps" in text
