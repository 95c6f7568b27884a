"""`python -m harness.explain [overrides]`: for the configured model, every weight's name and
shape, the closed-form count per layer, and where TensorFlow 1's BasicLSTMCell puts the same
numbers — so "why is my kernel (76, 256)?" has an answer (harness/models.py:explain)."""

from __future__ import annotations

import sys

from harness import compose, data
from harness.config import ConfigError
from harness.console import fail, quiet_startup
from harness.models import explain


def main(argv: list[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        config = compose.one_job(overrides)
    except ConfigError as error:
        fail(str(error))
    timesteps, input_dim, num_classes = data.sequence_shape(config["data"]["name"],
                                                            data.settings(config["data"]))
    with quiet_startup():
        text = explain(
            cell=config["model"]["cell"],
            units=config["model"]["units"],
            timesteps=timesteps,
            input_dim=input_dim,
            num_classes=num_classes,
            **({"width": config["model"]["width"]} if "width" in config["model"] else {}),
        )
    print(text)
    section = config["data"]
    if data.from_file(section) and data.load_splits(section["name"], **data.settings(section)).masked:
        print(f"\nThe series differ in length: padded to {timesteps} steps after their end, the "
              "padding masked (keras.layers.Masking before the layer; it has no weights).")


if __name__ == "__main__":
    main()
