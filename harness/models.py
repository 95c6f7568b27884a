"""Recurrent classifiers (one recurrent layer, then a Dense softmax head), a non-recurrent
baseline (`conv`: a 1-D convolution averaged over time) and their parameter accounting in closed
form. Knows nothing of Hydra or MLflow."""

from __future__ import annotations

CELLS = ("lstm", "gru", "simple_rnn", "conv")
RECURRENT = ("lstm", "gru", "simple_rnn")
CONV_WIDTH = 10  # steps a conv filter spans unless model.width says (the motif task's events)


class ModelError(ValueError):
    """A model setting that cannot be built; the message names the key and what is allowed."""


def check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise ModelError(f"model: unknown cell {cell!r}; allowed: {', '.join(CELLS)}")


def check_units(units) -> None:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ModelError(f"model.units: {units!r} is not allowed; use a positive integer")


def recurrent_param_count(cell: str, units: int, input_dim: int, width: int = CONV_WIDTH) -> int:
    """Weights of one recurrent layer, in closed form.

    LSTM: 4 gates, each with an input kernel (i×u), a recurrent kernel (u×u) and a bias (u).
    GRU: 3 gates; Keras's default reset_after=True keeps two biases per gate.
    SimpleRNN: one kernel, one recurrent kernel, one bias.
    conv (the baseline, not recurrent): `units` filters of `width` steps × i inputs, a bias each.
    """
    check_cell(cell)
    if cell == "conv":
        return units * (width * input_dim + 1)
    if cell == "lstm":
        return 4 * units * (input_dim + units + 1)
    if cell == "gru":
        return 3 * units * (input_dim + units + 2)
    return units * (input_dim + units + 1)


def param_count(cell: str, units: int, input_dim: int, num_classes: int,
                width: int = CONV_WIDTH) -> int:
    """Recurrent (or conv) layer plus the Dense head ((units + 1) × classes)."""
    return recurrent_param_count(cell, units, input_dim, width) + (units + 1) * num_classes


def recurrent_layer(cell: str, *, fused: bool = False):
    """The Keras layer class of a cell; an LSTM with `fused` gets harness.fused.FusedLSTM."""
    import keras

    if cell == "lstm" and fused:
        from harness.fused import FusedLSTM  # imports TensorFlow: only when asked for

        return FusedLSTM
    return {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}.get(cell, keras.layers.SimpleRNN)


def build_model(
    *, cell: str, units: int, timesteps: int, input_dim: int, num_classes: int, unroll=False,
    use_cudnn="auto", fused=False, mask_value: float | None = None, width: int = CONV_WIDTH,
):
    """keras.Input((timesteps, input_dim)) → recurrent layer(units) → Dense(num_classes, softmax).

    A `mask_value` puts keras.layers.Masking before the layer: steps whose inputs all equal it
    (the padding of ragged series, harness.data.PAD) are skipped, so a padded series' last real
    step gives the output, as the unpadded series would (no weights: the counts are the same).
    `use_cudnn=True` (LSTM, GRU) makes Keras fail loudly instead of silently falling back to
    the slow kernel when cuDNN cannot run the layer; the runner asks for it on a GPU.
    `fused=True` runs an LSTM's loop as TensorFlow's fused CPU kernel (harness/fused.py): the
    same layer and weights, faster on a CPU; the runner asks for it there.
    `cell="conv"`: the baseline instead of a recurrent layer — Conv1D(units filters of `width`
    steps, ReLU) and their mean over time (how often each filter's pattern occurs), then the
    head: a matched-filter detector that counts, with no memory across steps."""
    import keras

    check_cell(cell)
    check_units(units)
    if cell == "conv":
        inputs = keras.Input((timesteps, input_dim), name="sequence")
        found = keras.layers.Conv1D(units, width, activation="relu", name="conv")(inputs)
        counted = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(found)
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="head")(counted)
        return keras.Model(inputs, outputs, name=f"conv_{units}")
    layer_class = recurrent_layer(cell, fused=fused)
    inputs = keras.Input((timesteps, input_dim), name="sequence")
    sequence = (inputs if mask_value is None
                else keras.layers.Masking(mask_value=mask_value, name="padding")(inputs))
    options = {"use_cudnn": use_cudnn} if cell in ("lstm", "gru") else {}
    hidden = layer_class(units, unroll=unroll, name=cell, **options)(sequence)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head")(hidden)
    return keras.Model(inputs, outputs, name=f"{cell}_{units}")


def explain(*, cell: str, units: int, timesteps: int, input_dim: int, num_classes: int,
            width: int = CONV_WIDTH) -> str:
    """Every weight's name and shape, the closed-form count per layer, where TensorFlow 1's
    BasicLSTMCell puts the same numbers, and what the layer returns (`make explain`)."""
    model = build_model(
        cell=cell, units=units, timesteps=timesteps, input_dim=input_dim, num_classes=num_classes,
        width=width,
    )
    lines = [
        f"{cell.upper()}({units}) on {timesteps} steps × {input_dim} inputs, {num_classes} classes",
        "",
        f"{'weight':<32} {'shape':<14} {'count':>10}",
    ]
    for weight in model.weights:
        shape = tuple(weight.shape)
        count = 1
        for size in shape:
            count *= size
        lines.append(f"{weight.path:<32} {str(shape):<14} {count:>10,}")
    recurrent = recurrent_param_count(cell, units, input_dim, width)
    head = (units + 1) * num_classes
    formula = {
        "conv": f"u·(w·i+1) = {units}·({width}·{input_dim}+1)",
        "lstm": f"4·u·(i+u+1) = 4·{units}·({input_dim}+{units}+1)",
        "gru": f"3·u·(i+u+2) = 3·{units}·({input_dim}+{units}+2)  (reset_after: two biases)",
        "simple_rnn": f"u·(i+u+1) = {units}·({input_dim}+{units}+1)",
    }[cell]
    lines += [
        "",
        f"{cell:<10} {formula} = {recurrent:,}",
        f"{'head':<10} (u+1)·C = ({units}+1)·{num_classes} = {head:,}",
        f"{'total':<10} {recurrent + head:,}  (Keras count_params: {model.count_params():,})",
    ]
    if cell == "conv":  # no recurrent layer to say more of
        return "\n".join(lines)
    lines += ["", *output_shapes(cell, units, timesteps, input_dim)]
    if cell == "lstm":
        lines += [
            "",
            "TF1 BasicLSTMCell keeps the same weights as one kernel over [input, state]:",
            f"  kernel ({input_dim}+{units}, 4·{units}) = ({input_dim + units}, {4 * units})"
            f" = {(input_dim + units) * 4 * units:,}",
            f"  bias   (4·{units},) = ({4 * units},)",
            f"  together {(input_dim + units) * 4 * units + 4 * units:,} = the LSTM count above;"
            " Keras splits the kernel into kernel (i, 4u) and recurrent_kernel (u, 4u).",
        ]
    return "\n".join(lines)


def output_shapes(cell: str, units: int, timesteps: int, input_dim: int) -> list[str]:
    """What the recurrent layer returns, read off Keras's own symbolic shapes (None = batch)."""
    import keras

    layer_class = recurrent_layer(cell)
    inputs = keras.Input((timesteps, input_dim))
    last = layer_class(units)(inputs)
    sequence, *states = layer_class(units, return_sequences=True, return_state=True)(inputs)
    names = ["h", "c"] if cell == "lstm" else ["h"]
    return [
        f"Output of {cell.upper()}({units}) (None = the batch):",
        f"  return_sequences=False  (batch, units)            = {tuple(last.shape)}"
        "   the last step only: what the head sees here",
        f"  return_sequences=True   (batch, timesteps, units) = {tuple(sequence.shape)}"
        "   every step: what a stacked layer needs",
        f"  return_state=True adds the final state{'s' if len(states) > 1 else ''} "
        + ", ".join(f"{name} {tuple(state.shape)}" for name, state in zip(names, states))
        + " — (batch, units) each",
    ]
