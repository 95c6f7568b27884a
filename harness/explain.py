"""`python -m harness.explain [overrides]`: for the configured model, every weight's name and
shape, the closed-form count per layer, and where TensorFlow 1's BasicLSTMCell puts the same
numbers — so "why is my kernel (76, 256)?" has an answer."""

from __future__ import annotations

import os
import sys


from hydra import compose, initialize_config_dir  # noqa: E402

from harness import data, models  # noqa: E402
from harness.console import quiet_startup  # noqa: E402
from harness.config import ConfigError, check_config  # noqa: E402
from harness.sweep import CONF, check_names, fail, job_config  # noqa: E402


def explain(*, cell: str, units: int, timesteps: int, input_dim: int, num_classes: int) -> str:
    model = models.build_model(
        cell=cell, units=units, timesteps=timesteps, input_dim=input_dim, num_classes=num_classes
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
    recurrent = models.recurrent_param_count(cell, units, input_dim)
    head = (units + 1) * num_classes
    formula = {
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

    layer_class = models.recurrent_layer(cell)
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


def main(argv: list[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    check_names("smoke", overrides)  # unknown data / model → one line
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        try:
            config = job_config(compose("config", overrides=[*overrides, "study=explain"]))
            check_config(config)
        except ConfigError as error:
            fail(str(error))
        except Exception as error:
            fail(f"ARGS {' '.join(overrides)}: {str(error).splitlines()[0]}")
    timesteps, input_dim, num_classes = data.sequence_shape(config["data"]["name"],
                                                            data.settings(config["data"]))
    with quiet_startup():
        text = explain(
            cell=config["model"]["cell"],
            units=config["model"]["units"],
            timesteps=timesteps,
            input_dim=input_dim,
            num_classes=num_classes,
        )
    print(text)


if __name__ == "__main__":
    main()
