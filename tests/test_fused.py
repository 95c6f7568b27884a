"""The fused CPU LSTM (harness/fused.py) is keras.layers.LSTM with a faster loop: same weights,
same outputs and gradients to float rounding, same training, and Keras's loop where the fused
kernel does not apply."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness import data, models
from harness.fused import FusedLSTM


def twins(units, **options):
    """A keras.layers.LSTM and a FusedLSTM with the same weights, built on (5, 28, 28) input."""
    reference, fused = keras.layers.LSTM(units, **options), FusedLSTM(units, **options)
    inputs = tf.zeros((5, 28, 28))
    reference(inputs), fused(inputs)
    fused.set_weights(reference.get_weights())
    return reference, fused


@pytest.mark.parametrize("units,bias", [(7, 0.0), (32, 4.0)])
def test_outputs_and_gradients_match_keras(units, bias):
    reference, fused = twins(units, return_sequences=True, return_state=True)
    kernel, recurrent_kernel, bias_weights = reference.get_weights()
    # bias 4: gates wide open, so the cell state grows past BlockLSTM's default clip of 3.
    reference.set_weights([kernel, recurrent_kernel, bias_weights + bias])
    fused.set_weights(reference.get_weights())
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 28, 28)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        expected, got = reference(x), fused(x)
        losses = [tf.reduce_sum(out[0] ** 2) + tf.reduce_sum(out[2]) for out in (expected, got)]
    if bias:
        assert float(tf.reduce_max(tf.abs(expected[2]))) > 3
    for want, have in zip(expected, got):  # sequences, last h, last c
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)
    sources = (
        [x, *reference.trainable_weights],
        [x, *fused.trainable_weights],
    )
    for want, have in zip(tape.gradient(losses[0], sources[0]),
                          tape.gradient(losses[1], sources[1])):
        scale = float(tf.reduce_max(tf.abs(want)))
        assert scale > 0
        np.testing.assert_allclose(have, want, atol=1e-5 * scale)


def test_training_matches_keras():
    small = data.mnist_splits(train_size=512, val_size=100)
    shape = dict(cell="lstm", units=8, timesteps=28, input_dim=28, num_classes=10)
    trained = []
    for fused in (False, True):
        keras.utils.set_random_seed(3)
        model = models.build_model(fused=fused, **shape)
        assert isinstance(model.get_layer("lstm"), FusedLSTM) == fused
        start = [w.copy() for w in model.get_weights()]
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy")
        model.fit(small.x_train, small.y_train, batch_size=128, epochs=2, shuffle=False,
                  verbose=0)
        trained.append((start, model.get_weights()))
    (start_keras, keras_weights), (start_fused, fused_weights) = trained
    for a, b in zip(start_keras, start_fused):
        np.testing.assert_array_equal(a, b)  # same initialisation from the same seed
    for want, have, initial in zip(keras_weights, fused_weights, start_keras):
        np.testing.assert_allclose(have, want, atol=1e-4)
        assert not np.allclose(initial, want)  # training really moved the weights


def test_settings_the_kernel_lacks_fall_back_to_keras():
    reference, fused = twins(6, go_backwards=True)
    assert not fused._fusable(None, False)
    x = tf.constant(np.random.default_rng(1).normal(size=(5, 28, 28)), tf.float32)
    np.testing.assert_allclose(fused(x), reference(x), rtol=1e-6, atol=1e-6)
    _, plain = twins(6)
    assert plain._fusable(None, False)
    assert not plain._fusable(tf.ones((5, 28), bool), False)
