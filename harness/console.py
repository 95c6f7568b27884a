"""What the console shows: TensorFlow's C++ start-up lines kept off it, and each job's own output
(Keras's epoch lines) sent to the job's log file. Imports neither TensorFlow nor MLflow."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # before MLflow is first imported

# Lines TensorFlow's C++ side writes straight to file descriptor 2 at start-up on a machine
# without a GPU; since TF 2.19 TF_CPP_MIN_LOG_LEVEL no longer silences them (tensorflow#100442).
STARTUP_NOISE = re.compile(
    r"cudart_stub\.cc|failed call to cuInit|absl::InitializeLog\(\)|oneDNN custom operations"
    r"|cpu_feature_guard\.cc|This TensorFlow binary is optimized|rebuild TensorFlow with"
    r"|Unable to register cu(FFT|DNN|BLAS) factory|computation_placer\.cc"
)


@contextlib.contextmanager
def quiet_startup():
    """Run the block with file descriptor 2 captured; afterwards pass on every line except
    STARTUP_NOISE. Errors and warnings that matter still show (after the block)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not STARTUP_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


@contextlib.contextmanager
def output_to(path):
    """Send the block's Python-level stdout (Keras's epoch lines) to the end of `path`."""
    if path is None:
        yield
        return
    with open(path, "a") as log, contextlib.redirect_stdout(log):
        yield


def say(message: str) -> None:
    """A line for the console even while stdout goes to a job's log file."""
    print(message, file=sys.__stdout__, flush=True)
