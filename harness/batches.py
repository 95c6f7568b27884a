"""The order in which a run sees its training set, owned by the harness rather than by Keras's
shuffle: each (seed, epoch) has its own permutation, the same whether the seed trains alone or
as a member of a pack (harness/packing.py), so a packed member is the separate run of its seed.
Knows nothing of Hydra or MLflow."""

from __future__ import annotations

import math

import keras
import numpy as np


def batch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The permutation of range(size) that a run of `seed` trains on in `epoch` (0-based),
    drawn from (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def side_by_side(x: np.ndarray, members: int) -> np.ndarray:
    """A pack's input for the same examples: `members` copies of x along the feature axis."""
    return np.concatenate([x] * members, axis=-1) if members > 1 else x


class TrainingBatches(keras.utils.PyDataset):
    """Every training batch of a run (one seed) or of a pack (one seed per member), all epochs
    in one sequence: batch b of epoch e for the seed of member j is
    x[batch_order(seed_j, e)[b·B:(b+1)·B]]. A pack's members get their inputs side by side on
    the feature axis and their labels as one output each. Fit it with shuffle=False and a
    steps_per_epoch: Keras then reads it straight on across its epochs, and index //
    batches_per_epoch says the pass over the data (an "epoch" here), so no state has to follow
    Keras's epoch callbacks or tf.data's prefetching. A pass is Keras's epoch unless the
    budget is counted in batches (train.updates), whose validation rounds need not end one.

    `draw` ((seed, epoch) → (x, y), one seed only): every epoch after the first trains on the
    set it returns (data.fresh_each_epoch), the same size as x, in the same kind of order."""

    def __init__(self, x: np.ndarray, y: np.ndarray, seeds: list[int], batch_size: int,
                 epochs: int, packed: bool, draw=None):
        super().__init__()
        self.x, self.y, self.seeds, self.batch_size = x, y, list(seeds), batch_size
        self.epochs, self.packed, self.draw = epochs, packed, draw
        self.batches_per_epoch = math.ceil(len(y) / batch_size)
        self._epoch, self._orders = None, []
        self._drawn: tuple[int, tuple] | None = None

    def epoch_data(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The training set of `epoch`: x, y, or with `draw` the epoch's own from epoch 1."""
        if self.draw is None or epoch == 0:
            return self.x, self.y
        if self._drawn is None or self._drawn[0] != epoch:
            self._drawn = (epoch, self.draw(self.seeds[0], epoch))
        return self._drawn[1]

    @property
    def num_batches(self) -> int:
        return self.batches_per_epoch * self.epochs

    def as_tf_dataset(self):
        """The same batches as a tf.data pipeline, for the TensorFlow backend: there a
        PyDataset reaches the model through tf.data's from_generator, about 4 ms a batch here,
        more than a small model's training step; gathering inside the pipeline costs far less.
        The data enters as one dataset element, as Keras's own array adapter does it, not as a
        constant in the graph."""
        import tensorflow as tf

        members = len(self.seeds)
        orders = np.stack([np.stack(self._epoch_orders(epoch), axis=1)
                           for epoch in range(self.epochs)]).astype("int32")

        def gather(pick, xy):
            x, y = xy
            if not self.packed:
                return tf.gather(x, pick[:, 0]), tf.gather(y, pick[:, 0])
            inputs = tf.concat([tf.gather(x, pick[:, j]) for j in range(members)], axis=-1)
            return inputs, tuple(tf.gather(y, pick[:, j]) for j in range(members))

        def batched(order):
            return tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size)

        if self.draw is not None:  # one element per epoch: its own data and its order
            spec = (tf.TensorSpec(self.x.shape, self.x.dtype),
                    tf.TensorSpec(self.y.shape, self.y.dtype))
            arrays = tf.data.Dataset.from_generator(
                lambda: (self.epoch_data(epoch) for epoch in range(self.epochs)),
                output_signature=spec)
            epochs = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(orders), arrays))
            return (epochs.flat_map(lambda order, xy: batched(order).map(
                        lambda pick: gather(pick, xy)))
                    .prefetch(tf.data.AUTOTUNE))
        indices = tf.data.Dataset.from_tensor_slices(orders).flat_map(batched)  # batches never span epochs
        arrays = tf.data.Dataset.from_tensors((self.x, self.y)).repeat()
        return (tf.data.Dataset.zip((indices, arrays))
                .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    def _epoch_orders(self, epoch: int) -> list[np.ndarray]:
        """Each seed's order in `epoch`; batches are asked for in sequence, so one epoch kept."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._orders = [batch_order(seed, epoch, len(self.y)) for seed in self.seeds]
        return self._orders

    def __getitem__(self, index: int):
        epoch, batch = divmod(index, self.batches_per_epoch)
        window = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        picks = [order[window] for order in self._epoch_orders(epoch)]
        if not self.packed:
            x, y = self.epoch_data(epoch)
            return x[picks[0]], y[picks[0]]
        inputs = np.concatenate([self.x[pick] for pick in picks], axis=-1)
        return inputs, tuple(self.y[pick] for pick in picks)


class SideBySide(keras.utils.PyDataset):
    """Inputs for predicting with a pack: each batch of x given to every member at once, built
    batch by batch (the whole training set side by side would take members × its memory)."""

    def __init__(self, x: np.ndarray, members: int, batch_size: int):
        super().__init__()
        self.x, self.members, self.batch_size = x, members, batch_size

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return (side_by_side(self.x[window], self.members),)
