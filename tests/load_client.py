"""One process of a tracking burst (tests/test_tracking_load.py): `threads` clients at once, each
logging what a job logs, through the harness's own tracking calls — a child run of `parent`
with a job's params and config, loss/accuracy/val_loss/val_accuracy per epoch, the final
metrics and tags, FINISHED. A client that fails prints its error and the process exits 1.

python -m tests.load_client URI STUDY PARENT FIRST THREADS EPOCHS"""

import sys
import threading
import traceback

import mlflow

from harness import tracking

PER_EPOCH = ("loss", "accuracy", "val_loss", "val_accuracy")
FINAL = ("param_count", "test_accuracy", "test_loss", "train_accuracy", "train_loss",
         "train_time_s")


def client(uri: str, study: str, parent: str, number: int, epochs: int, errors: list) -> None:
    try:
        with tracking.child_run(uri, study, parent, run_name=f"client {number}",
                                tags={"run_key": f"load-{number}"}):
            tracking.log_start({"units": number, "cell": "lstm", "seed": 0, "epochs": epochs,
                                "batch_size": 128, "learning_rate": 0.001},
                               f"model:\n  units: {number}\n")
            for epoch in range(epochs):
                mlflow.log_metrics({name: 1.0 / (epoch + 1) for name in PER_EPOCH}, step=epoch)
            tracking.log_result({name: float(number) for name in FINAL}, {"device": "cpu"})
    except BaseException as error:  # noqa: BLE001 - every failure is the test's finding
        errors.append(f"client {number}: {type(error).__name__}: {error}".splitlines()[0])
        traceback.print_exc()


def main(uri: str, study: str, parent: str, first: str, threads: str, epochs: str) -> None:
    tracking.connect(uri)
    errors: list[str] = []
    workers = [threading.Thread(target=client, args=(uri, study, parent, int(first) + k,
                                                     int(epochs), errors))
               for k in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for error in errors:
        print(error, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main(*sys.argv[1:])
