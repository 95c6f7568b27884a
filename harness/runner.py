"""Runs one job — one (configuration, seed): checks the config, seeds, picks the device, loads
the data, builds, trains and evaluates the model. Callable without Hydra or MLflow."""

from __future__ import annotations

import logging
import math
import os
import time

from harness.console import quiet_startup

with quiet_startup():  # TensorFlow's C++ start-up lines stay off the console
    import keras
    from keras.src.utils import module_utils

    if keras.backend.backend() != "tensorflow":
        # keras.utils.set_random_seed would import TensorFlow to seed it too (9 s of every
        # worker's start here) although nothing here runs on it: Keras then works as where
        # TensorFlow is not installed (a GPU machine with JAX only).
        module_utils.tensorflow._available = False

import numpy as np  # noqa: E402

# A set smaller than PREDICT_BATCH (a file's dataset: 54, 216, 370 series) is one batch of its
# own shape, traced once per shape; TensorFlow's Python logger calls that "excessive retracing"
# at the console. Its errors still show.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

from harness import backend, batches, data, models, packing  # noqa: E402
from harness.config import ConfigError, check_config  # noqa: E402


def select_device(device: str) -> str:
    """Map device=auto|cpu|gpu to a Keras device name (gpu:0 or cpu:0) on the current backend;
    gpu without a GPU is an error."""
    gpus = backend.gpus() if device != "cpu" else []
    if device == "gpu" and not gpus:
        raise ConfigError(f"device: gpu was asked for but {backend.name()} sees no GPU; "
                          "use auto or cpu")
    return "gpu:0" if gpus else "cpu:0"


def configure_threads(jobs: int) -> None:
    """Share the cores between `jobs` parallel jobs, each worker bound to cores no other holds
    (backend.pin_to_free_cpus); a Slurm task uses the CPUs it was given (without cgroups the
    backend would see the whole node). Must run before the backend's first op in this process;
    a worker's later jobs keep what its first job set."""
    allocated = os.environ.get("SLURM_CPUS_PER_TASK")
    if jobs <= 1 and not allocated:
        return
    threads = max(1, int(allocated or os.cpu_count() or 1) // jobs)
    backend.set_threads(threads)
    if not allocated and jobs <= len(os.sched_getaffinity(0)):
        # parallel jobs on one machine: each worker on cores of its own (Slurm places its
        # tasks itself)
        backend.pin_to_free_cpus(threads)


def splits_for(config: dict) -> data.Splits:
    return data.load_splits(config["data"]["name"], **data.settings(config["data"]))


def job_params(config: dict, splits: data.Splits) -> dict:
    """The run's parameters, named as in docs/tracking.md; sizes are the ones actually used."""
    return {
        "units": config["model"]["units"],
        "cell": config["model"]["cell"],
        "dataset": config["data"]["name"],
        "timesteps": splits.timesteps,
        "input_dim": splits.input_dim,
        "num_classes": splits.num_classes,
        "batch_size": config["train"]["batch_size"],
        "epochs": config["train"]["epochs"],
        "learning_rate": config["train"]["learning_rate"],
        "seed": config["seed"],
        "train_size": len(splits.y_train),
        "label_noise": config["data"]["label_noise"],
        # only where it stops early: a run without it trained every epoch
        **({"patience": config["train"]["patience"]} if config["train"].get("patience") else {}),
        # only where the budget is counted in batches: `epochs` are then its validations
        **({"updates": config["train"]["updates"]} if config["train"].get("updates") else {}),
        **({"width": config["model"]["width"]} if config["model"]["cell"] == "conv" else {}),
        **({"random_inputs": 1} if config["data"].get("random_inputs") else {}),
        # the synthetic task: which draw of motifs, and whether each epoch has new data
        **({"motifs_seed": config["data"]["seed"],
            "fresh_each_epoch": int(bool(config["data"].get("fresh_each_epoch")))}
           if config["data"]["name"] == "motifs" else {}),
    }


def scores(probabilities: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of softmax outputs against labels."""
    picked = probabilities[np.arange(len(y)), y.astype(np.int64)]
    # Keras clips probabilities to its epsilon (1e-7) in the cross-entropy; do the same.
    loss = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    accuracy = float((probabilities.argmax(axis=1) == y).mean())
    return accuracy, loss


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's wall time, and its training part alone (up to the validation)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self.train_times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._training = True

    def on_test_begin(self, logs=None):
        if self._training:  # fit's validation, not a separate evaluate
            self.train_times.append(time.perf_counter() - self._start)
            self._training = False

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)
        if self._training:  # no validation this epoch
            self.train_times.append(self.times[-1])

    def samples_per_s(self, examples: int) -> float:
        """Training throughput: examples over the median epoch's training part (the median
        leaves out the first epoch's tracing when there are three epochs or more)."""
        return examples / float(np.median(self.train_times))


def _check_finite(history: dict) -> None:
    losses = np.asarray(history["loss"], dtype=float)
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(
            f"training loss became {losses[~np.isfinite(losses)][0]} in epoch "
            f"{len(losses) - 1}; lower train.learning_rate"
        )


def final_metrics(config, splits, history, test_probabilities, train_probabilities, *,
                  train_time: float, epoch_time: float, samples_per_s: float,
                  last_epoch=None) -> dict:
    """The run's closing metrics, named as in docs/tracking.md. Times are this run's share.
    `last_epoch`: (test, train) outputs of the last epoch's weights where early stopping
    restored the best epoch's: the same scores as `last_*`."""
    test_accuracy, test_loss = scores(test_probabilities, splits.y_test)
    train_accuracy, train_loss = scores(train_probabilities, splits.y_train_clean)
    fit_accuracy, _ = scores(train_probabilities, splits.y_train)
    last = {}
    if last_epoch is not None:  # what training to the end gives, beside the restored weights
        last_test, last_train = last_epoch
        last = {"last_test_accuracy": scores(last_test, splits.y_test)[0],
                "last_train_accuracy": scores(last_train, splits.y_train_clean)[0],
                "last_fit_accuracy": scores(last_train, splits.y_train)[0]}
        last["last_generalization_gap"] = last["last_train_accuracy"] - last["last_test_accuracy"]
    best_epoch = int(np.argmax(history["val_accuracy"]))  # 0-based, as Keras counts epochs
    # The tested weights: the best epoch's when early stopping restored them, else the last's.
    tested_epoch = best_epoch if config["train"].get("patience") else len(history["loss"]) - 1
    return {
        "param_count": models.param_count(
            config["model"]["cell"], config["model"]["units"], splits.input_dim,
            splits.num_classes, config["model"].get("width", models.CONV_WIDTH),
        ),
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_accuracy": train_accuracy,
        "train_loss": train_loss,
        "fit_accuracy": fit_accuracy,  # on the (possibly noisy) labels it was trained on
        "generalization_gap": train_accuracy - test_accuracy,
        "best_val_accuracy": float(history["val_accuracy"][best_epoch]),
        "best_epoch": best_epoch,
        "final_val_accuracy": float(history["val_accuracy"][tested_epoch]),
        "epochs_trained": len(history["loss"]),
        "train_time_s": train_time,
        "epoch_time_s": epoch_time,
        "samples_per_s": samples_per_s,
        **last,
        **(splits.ceiling or {}),  # the synthetic task's best possible accuracy
    }


# Validation and prediction batch: 1000 divides MNIST's 5k validation, 10k test and 55k training
# sets (and the smaller studies' sets), so each is one batch shape and XLA compiles one program
# for it (1024 left remainders of 904, 784 and 728: three programs more per size and worker,
# ~0.2 s of a size's first job with the cache filled, ~1 s each to compile without it).
PREDICT_BATCH = 1000


def compile_model(model, learning_rate: float, members: int = 0) -> None:
    """Adam and the cross-entropy; `members` > 0: a pack's model, one output per member."""
    loss = "sparse_categorical_crossentropy"
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=[loss] * members if members else loss,
        # Keras's per-output losses average batches unweighted (the last, partial batch counts
        # as a full one), its total loss weights them by size; a cross-entropy metric per member
        # gives each member the loss its separate run reports.
        metrics=[["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="cross_entropy")]
                 for _ in range(members)] if members else ["accuracy"],
    )


# The model this process compiled last, kept for its next job of the same shape: its key, the
# model, and its optimizer's state before any training.
_last_compiled: dict = {}


def compiled_model(learning_rate: float, **shape) -> keras.Model:
    """models.build_model(**shape) with the initial weights of the current seed, compiled.

    A worker's next job of the same shape and learning rate (the next seed of a size, say)
    gets the model the last one trained, with the fresh weights loaded and the optimizer reset
    to its initial state: the backend's traced and compiled training, validation and
    prediction steps are kept instead of being made again (on JAX ~2 s of a job here). The
    same programs on the same inputs: the run equals the one a fresh model gives
    (tests/test_runner.py)."""
    fresh = models.build_model(**shape)
    key = (keras.backend.backend(), learning_rate, tuple(sorted(shape.items())))
    if _last_compiled.get("key") != key:
        _last_compiled.clear()  # one model at a time: the old one's programs can go
        compile_model(fresh, learning_rate)
        fresh.optimizer.build(fresh.trainable_variables)  # as fit would; its state at step 0
        initial = [keras.ops.convert_to_numpy(v) for v in fresh.optimizer.variables]
        _last_compiled.update(key=key, model=fresh, optimizer_state=initial)
        return fresh
    model = _last_compiled["model"]
    model.set_weights(fresh.get_weights())
    for variable, value in zip(model.optimizer.variables, _last_compiled["optimizer_state"]):
        variable.assign(value)
    return model


def fit_and_predict(model, splits, train_config, seeds: list[int], *, packed=False,
                    callbacks=()):
    """Fit a compiled model (compile_model) on the harness's batch order (harness/batches.py)
    with validation every epoch, then predict the test and training sets. `seeds`: the run's
    seed, or one seed per member of a pack (`packed`: one output and one loss per member,
    inputs side by side). Validation runs at PREDICT_BATCH whatever the training batch size:
    it does not change what is learned, and at batch size 1 it would otherwise cost more than
    the training. Returns (history, train_time, mean epoch time, training samples/s, test
    outputs, train outputs, and where early stopping restored the best epoch's weights the last
    epoch's (test, train) outputs, else None)."""
    members = len(seeds) if packed else 1
    if packed and splits.draw_train:
        raise ValueError("data.fresh_each_epoch: each seed draws its own data; "
                         "train one seed at a time (pack_max_units=0)")
    batch_size, updates = train_config["batch_size"], train_config.get("updates", 0)
    # train.updates: Keras reads the batches straight on across its epochs when steps_per_epoch
    # is given, so `epochs` of updates / epochs steps train exactly `updates` batches
    passes = (math.ceil(updates / math.ceil(len(splits.y_train) / batch_size)) if updates
              else train_config["epochs"])
    training = batches.TrainingBatches(
        splits.x_train, splits.y_train, seeds, batch_size, passes, packed,
        draw=splits.draw_train,
    )
    steps = updates // train_config["epochs"] if updates else training.batches_per_epoch
    validation = (batches.side_by_side(splits.x_val, members),
                  tuple([splits.y_val] * members) if packed else splits.y_val)
    timer = EpochTimer()
    stopping, last_weights = [], []
    if train_config.get("patience"):
        if packed:
            raise ValueError("train.patience: a pack trains its members for the same epochs; "
                             "early stopping needs each seed alone (pack_max_units=0)")
        stopping = [
            # called before EarlyStopping's own on_train_end restores the best epoch's weights
            keras.callbacks.LambdaCallback(
                on_train_end=lambda logs: last_weights.append(model.get_weights())),
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=train_config["patience"],
                restore_best_weights=True),
        ]
    started = time.perf_counter()
    history = model.fit(
        training.as_tf_dataset() if backend.name() == "tensorflow" else training,
        epochs=train_config["epochs"],
        steps_per_epoch=steps,
        shuffle=False,  # the order is the harness's (harness/batches.py)
        validation_data=validation,
        validation_batch_size=PREDICT_BATCH,
        callbacks=[timer, keras.callbacks.TerminateOnNaN(), *stopping, *callbacks],
        verbose=2,
    ).history
    train_time = time.perf_counter() - started
    _check_finite(history)

    def predict(x):
        if not packed:
            return model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
        return model.predict(batches.SideBySide(x, members, PREDICT_BATCH), verbose=0)

    test_outputs, train_outputs = predict(splits.x_test), predict(splits.x_train)
    last_epoch = None
    if last_weights:  # early stopping restored the best epoch's: score the last's too
        best = model.get_weights()
        model.set_weights(last_weights[0])
        last_epoch = predict(splits.x_test), predict(splits.x_train)
        model.set_weights(best)
    throughput = timer.samples_per_s(steps * batch_size if updates else len(splits.y_train))
    return (history, train_time, float(np.mean(timer.times)), throughput, test_outputs,
            train_outputs, last_epoch)


def start(config: dict) -> str:
    """What every training does first: check the config, make sure Keras runs the job's backend,
    choose the device (returned) and start a fresh Keras session. Jobs sharing a process must
    not share graph state; Python's full garbage collection is skipped (~0.5 s a job here):
    reference counting frees an old model, and the next job of a shape reuses it anyway
    (compiled_model)."""
    check_config(config)
    backend.use(config.get("backend", "tensorflow"))  # the backend Keras was loaded with
    device = select_device(config["device"])
    keras.backend.clear_session(free_memory=False)
    return device


def fused_on(device: str) -> bool:
    """TensorFlow's fused LSTM kernel (harness/fused.py) runs on the CPU under TensorFlow."""
    return not device.startswith("gpu") and backend.name() == "tensorflow"


def ran_on(device: str, cell: str) -> dict:
    """Where a run trained, for its tags: the device's name, the backend, the loop's kernel."""
    gpu = device.startswith("gpu")
    return {"device": backend.gpus()[0] if gpu else "cpu", "backend": backend.name(),
            "kernel": backend.loop_kernel(gpu, cell)}


def train(config: dict, callbacks=(), splits: data.Splits | None = None) -> dict:
    """Train and evaluate one job. Returns params, metrics, per-epoch history and device info.

    `config` is a plain dict with the sections of conf/config.yaml. Per-epoch validation uses
    the held-out split; the final metrics use the full test set and the clean training labels
    with the final weights.
    """
    device = start(config)
    keras.utils.set_random_seed(config["seed"])
    splits = splits if splits is not None else splits_for(config)
    params = job_params(config, splits)
    model_config, train_config = config["model"], config["train"]
    with keras.device(device):
        model = compiled_model(
            train_config["learning_rate"],
            cell=model_config["cell"],
            units=model_config["units"],
            timesteps=splits.timesteps,
            input_dim=splits.input_dim,
            num_classes=splits.num_classes,
            # cuDNN's kernels take masks of right-padded series on TensorFlow only: a masked
            # model may fall back to Keras's loop
            use_cudnn=True if device.startswith("gpu") and not splits.masked else "auto",
            fused=fused_on(device),
            mask_value=data.PAD if splits.masked else None,
            **({"width": model_config["width"]} if "width" in model_config else {}),
        )
        try:
            (history, train_time, epoch_time, throughput, test_probabilities,
             train_probabilities, last_epoch) = fit_and_predict(
                model, splits, train_config, [config["seed"]], callbacks=callbacks)
        except BaseException:  # a model stopped mid-fit is not one to reuse
            _last_compiled.clear()
            raise
    metrics = final_metrics(
        config, splits, history, test_probabilities, train_probabilities,
        train_time=train_time, epoch_time=epoch_time, samples_per_s=throughput,
        last_epoch=last_epoch,
    )
    if metrics["param_count"] != model.count_params():
        raise AssertionError(
            f"closed-form param_count {metrics['param_count']} != Keras {model.count_params()}"
        )
    return {"params": params, "metrics": metrics, "history": history,
            **ran_on(device, model_config["cell"])}


def train_packed(config: dict, seeds: list[int], splits: data.Splits | None = None,
                 callbacks=()) -> list[dict]:
    """Train one model per seed, packed into one wider layer (harness/packing.py), each member
    on its own seed's batch order: member k is the separate run of seed k, to float rounding.
    Returns one result per seed, as `train` does; times are each member's share of the packed
    training."""
    device = start(config)
    splits = splits if splits is not None else splits_for(config)
    if splits.masked:  # side by side, one member's padding is another's data
        raise ValueError("pack_max_units: ragged (masked) series train one seed at a time")
    model_config, train_config = config["model"], config["train"]
    members = len(seeds)
    with keras.device(device):
        model = packing.build_packed(
            cell=model_config["cell"], units=model_config["units"], seeds=seeds,
            timesteps=splits.timesteps, input_dim=splits.input_dim,
            num_classes=splits.num_classes, fused=fused_on(device),
        )
        compile_model(model, train_config["learning_rate"], members)
        history, train_time, epoch_time, throughput, test_outputs, train_outputs, _ = (
            fit_and_predict(model, splits, train_config, seeds, packed=True, callbacks=callbacks))
    results = []
    for member, seed in enumerate(seeds):
        own = f"member_{member}"
        member_history = {
            "loss": history[f"{own}_cross_entropy"],
            "accuracy": history[f"{own}_accuracy"],
            "val_loss": history[f"val_{own}_cross_entropy"],
            "val_accuracy": history[f"val_{own}_accuracy"],
        }
        member_config = {**config, "seed": seed}
        metrics = final_metrics(
            member_config, splits, member_history, test_outputs[member], train_outputs[member],
            train_time=train_time / members, epoch_time=epoch_time / members,
            samples_per_s=throughput * members,  # each member sees every example
        )
        results.append({
            "params": job_params(member_config, splits),
            "metrics": metrics,
            "history": member_history,
            **ran_on(device, model_config["cell"]),
            "packed": {"seeds": seeds, "train_time_s": train_time},
        })
    return results
