"""An LSTM layer for the CPU: keras.layers.LSTM whose loop over time runs as TensorFlow's fused
`BlockLSTM` kernel (one op forward, one op for the gradient) instead of Keras's generic
while-loop of small ops. Knows nothing of Hydra or MLflow.

Why: small recurrent models are almost pure per-op overhead on a CPU. Measured on 2 cores
(1 thread, batch 128, row MNIST): an epoch of LSTM(16) 2.11 s fused vs 3.89 s with Keras's
loop, LSTM(32) 2.67 vs 4.04 s, LSTM(128) about the same (~9.3 s). On a GPU Keras's own cuDNN
path is faster; the runner uses this layer on the CPU only.

Same layer otherwise: the weights, their layout (gates i, f, c, o), their initialisation and
the maths are keras.layers.LSTM's; only the order of floating-point operations differs, so
outputs and gradients agree to float rounding (tests/test_fused.py). Settings the kernel does
not cover (masks, dropout, other activations, go_backwards, unroll) fall back to Keras's loop.

BlockLSTM, not BlockLSTMV2: TensorFlow 2.21 registers V1's gradient (gate order i, c, f, o)
for V2 (gate order i, f, c, o), so V2's gradients are wrong; V1 is right once the gates are
reordered."""

from __future__ import annotations

import keras
import tensorflow as tf


def _icfo(weight):
    """Keras keeps the gates as [i | f | c | o] along the last axis; BlockLSTM wants i, c, f, o."""
    i, f, c, o = tf.split(weight, 4, axis=-1)
    return tf.concat([i, c, f, o], axis=-1)


@keras.saving.register_keras_serializable(package="harness")
class FusedLSTM(keras.layers.LSTM):
    """keras.layers.LSTM run by the fused BlockLSTM kernel where its settings allow."""

    def _fusable(self, mask, training) -> bool:
        cell = self.cell
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.go_backwards
            and not self.unroll
            and cell.use_bias
            and not cell.recurrent_dropout
            and not (training and cell.dropout)
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fusable(mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        h0, c0 = initial_state
        # BlockLSTM multiplies [x_t, h_{t-1}] by one stacked kernel.
        kernel = tf.concat([_icfo(cell.kernel), _icfo(cell.recurrent_kernel)], axis=0)
        no_peephole = tf.zeros([cell.units], sequences.dtype)
        time_major = tf.transpose(sequences, [1, 0, 2])
        _, cs, _, _, _, _, h = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.cast(tf.shape(sequences)[1], tf.int64),
            x=time_major, cs_prev=c0, h_prev=h0, w=kernel,
            wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=_icfo(cell.bias),
            forget_bias=0.0,  # Keras's unit forget bias is in the bias itself
            cell_clip=-1.0,  # < 0: no clipping, as Keras
            use_peephole=False,
        )
        self.supports_jit = False  # BlockLSTM has no XLA kernel
        last_h, last_c = h[-1], cs[-1]
        if self.return_sequences:
            outputs = tf.transpose(h, [1, 0, 2])
        else:
            outputs = tf.expand_dims(last_h, axis=1)
        return last_h, outputs, [last_h, last_c]
