"""Seed packing: k copies of one small recurrent model, each initialised exactly as a separate
model with its own seed would be, trained together as one wider layer whose kernels are kept
block-diagonal. Small models are almost pure per-step overhead, so k of them cost little more
than one. Knows nothing of Hydra or MLflow.

Why it is exact: the members' inputs come side by side (member j's batch is its own seed's,
harness/batches.py); member j's gates read its own input through its own diagonal block of the
input kernel and its own previous state through its own diagonal block of the recurrent kernel
(the off-diagonal blocks are zero and put back to zero after every update by a constraint);
each member has its own head; the loss is the sum of the members' losses, so each member's
gradient is its own loss's gradient, and Adam updates every weight from its own gradient
history. So a packed member equals the separate run of its seed — initialisation, batch order,
updates — to float rounding."""

from __future__ import annotations

import keras
import numpy as np

from harness import models

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


@keras.saving.register_keras_serializable(package="harness")
class BlockDiagonal(keras.constraints.Constraint):
    """Zero every weight that connects one member's input or state (`rows` rows per member) to
    another member's gates (`units` columns per member in each gate)."""

    def __init__(self, members: int, units: int, gates: int, rows: int | None = None):
        self.members, self.units, self.gates = members, units, gates
        self.rows = units if rows is None else rows
        row_owner = np.repeat(np.arange(members), self.rows)
        # gates are [g0 | g1 | ...], each members × units
        column_owner = np.tile(np.repeat(np.arange(members), units), gates)
        self.mask = (row_owner[:, None] == column_owner[None, :]).astype("float32")

    def __call__(self, weight):
        return weight * keras.ops.convert_to_tensor(self.mask, dtype=weight.dtype)

    def get_config(self):
        return {"members": self.members, "units": self.units, "gates": self.gates,
                "rows": self.rows}


def _columns(member: int, members: int, units: int, gates: int) -> np.ndarray:
    """Indices, in the packed gate axis, of one member's gate columns."""
    return np.concatenate(
        [gate * members * units + member * units + np.arange(units) for gate in range(gates)]
    )


def build_packed(
    *, cell: str, units: int, seeds: list[int], timesteps: int, input_dim: int, num_classes: int,
    fused: bool = False,
) -> keras.Model:
    """One model with an output per seed (`member_0`, `member_1`, ...), each member starting
    from exactly the weights `models.build_model` gives after `keras.utils.set_random_seed`.
    Its input is the members' sequences side by side: (timesteps, members × input_dim).
    `fused` as in `models.build_model`."""
    members, gates = len(seeds), GATES[cell]
    separate = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        separate.append(
            models.build_model(
                cell=cell, units=units, timesteps=timesteps, input_dim=input_dim,
                num_classes=num_classes,
            )
        )
    inputs = keras.Input((timesteps, members * input_dim), name="sequence")
    recurrent = models.recurrent_layer(cell, fused=fused)(
        members * units, name=cell,
        kernel_constraint=BlockDiagonal(members, units, gates, rows=input_dim),
        recurrent_constraint=BlockDiagonal(members, units, gates),
    )
    hidden = recurrent(inputs)
    outputs = []
    for member in range(members):
        start = member * units
        state = keras.layers.Lambda(
            lambda h, start=start: h[:, start : start + units], name=f"state_{member}"
        )(hidden)
        outputs.append(
            keras.layers.Dense(num_classes, activation="softmax", name=f"member_{member}")(state)
        )
    model = keras.Model(inputs, outputs, name=f"{cell}_{units}_x{members}")

    kernel, recurrent_kernel, bias = (np.zeros(w.shape, "float32") for w in recurrent.weights)
    for member, single in enumerate(separate):
        own_kernel, own_recurrent, own_bias = single.get_layer(cell).get_weights()
        columns = _columns(member, members, units, gates)
        rows = member * units + np.arange(units)
        kernel[np.ix_(member * input_dim + np.arange(input_dim), columns)] = own_kernel
        recurrent_kernel[np.ix_(rows, columns)] = own_recurrent
        bias[..., columns] = own_bias
        model.get_layer(f"member_{member}").set_weights(single.get_layer("head").get_weights())
    recurrent.set_weights([kernel, recurrent_kernel, bias])
    return model


def member_weights(model: keras.Model, member: int, members: int, units: int, cell: str):
    """Member `member`'s weights in the layout of a separate `models.build_model`."""
    kernel, recurrent_kernel, bias = model.get_layer(cell).get_weights()
    columns = _columns(member, members, units, GATES[cell])
    rows = member * units + np.arange(units)
    input_dim = kernel.shape[0] // members
    return [
        kernel[np.ix_(member * input_dim + np.arange(input_dim), columns)],
        recurrent_kernel[np.ix_(rows, columns)], bias[..., columns],
        *model.get_layer(f"member_{member}").get_weights(),
    ]
