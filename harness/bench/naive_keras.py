"""The baseline `make bench` compares against: the classic Keras MNIST-LSTM script, run as one
fresh process per (units, seed). Deliberately plain — no harness code but the data loader, so
both sides see the same images.

`python -m harness.bench.naive_keras UNITS SEED EPOCHS` prints one JSON line with its timings."""

import json
import os
import sys
import time

started = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from harness.data import mnist_splits  # noqa: E402

units, seed, epochs = (int(value) for value in sys.argv[1:4])
keras.utils.set_random_seed(seed)
data = mnist_splits()  # rows of 28 pixels, 55k train / 5k validation, the 10k test set
model = keras.Sequential([
    keras.Input((28, 28)),
    keras.layers.LSTM(units),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
fit_started = time.perf_counter()
model.fit(data.x_train, data.y_train, batch_size=128, epochs=epochs,
          validation_data=(data.x_val, data.y_val), verbose=0)
fit_time = time.perf_counter() - fit_started
_, test_accuracy = model.evaluate(data.x_test, data.y_test, batch_size=128, verbose=0)
print(json.dumps({
    "units": units, "seed": seed, "epochs": epochs, "test_accuracy": test_accuracy,
    "train_time_s": fit_time, "epoch_time_s": fit_time / epochs,
    "samples_per_s": len(data.y_train) * epochs / fit_time,
    "startup_s": fit_started - started,
}))
