"""Recurrent classifiers (one recurrent layer, then a Dense softmax head) and their parameter
accounting in closed form. Knows nothing of Hydra or MLflow."""

from __future__ import annotations

CELLS = ("lstm", "gru", "simple_rnn")


class ModelError(ValueError):
    """A model setting that cannot be built; the message names the key and what is allowed."""


def check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise ModelError(f"model: unknown cell {cell!r}; allowed: {', '.join(CELLS)}")


def check_units(units) -> None:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ModelError(f"model.units: {units!r} is not allowed; use a positive integer")


def recurrent_param_count(cell: str, units: int, input_dim: int) -> int:
    """Weights of one recurrent layer, in closed form.

    LSTM: 4 gates, each with an input kernel (i×u), a recurrent kernel (u×u) and a bias (u).
    GRU: 3 gates; Keras's default reset_after=True keeps two biases per gate.
    SimpleRNN: one kernel, one recurrent kernel, one bias.
    """
    check_cell(cell)
    if cell == "lstm":
        return 4 * units * (input_dim + units + 1)
    if cell == "gru":
        return 3 * units * (input_dim + units + 2)
    return units * (input_dim + units + 1)


def param_count(cell: str, units: int, input_dim: int, num_classes: int) -> int:
    """Recurrent layer plus the Dense head ((units + 1) × classes)."""
    return recurrent_param_count(cell, units, input_dim) + (units + 1) * num_classes


def recurrent_layer(cell: str, *, fused: bool = False):
    """The Keras layer class of a cell; an LSTM with `fused` gets harness.fused.FusedLSTM."""
    import keras

    if cell == "lstm" and fused:
        from harness.fused import FusedLSTM

        return FusedLSTM
    return {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}.get(cell, keras.layers.SimpleRNN)


def build_model(
    *, cell: str, units: int, timesteps: int, input_dim: int, num_classes: int, unroll=False,
    use_cudnn="auto", fused=False,
):
    """keras.Input((timesteps, input_dim)) → recurrent layer(units) → Dense(num_classes, softmax).

    `use_cudnn=True` (LSTM, GRU) makes Keras fail loudly instead of silently falling back to
    the slow kernel when cuDNN cannot run the layer; the runner asks for it on a GPU.
    `fused=True` runs an LSTM's loop as TensorFlow's fused CPU kernel (harness/fused.py): the
    same layer and weights, faster on a CPU; the runner asks for it there."""
    import keras

    check_cell(cell)
    check_units(units)
    layer_class = recurrent_layer(cell, fused=fused)
    inputs = keras.Input((timesteps, input_dim), name="sequence")
    options = {"use_cudnn": use_cudnn} if cell in ("lstm", "gru") else {}
    hidden = layer_class(units, unroll=unroll, name=cell, **options)(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head")(hidden)
    return keras.Model(inputs, outputs, name=f"{cell}_{units}")
