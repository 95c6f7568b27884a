"""The Keras 3 backend a sweep runs on (TensorFlow, JAX or PyTorch): chosen before Keras loads,
and the few things that differ between them — which GPUs there are, how many CPU threads, GPU
memory sharing, the kernel that runs a recurrent loop. Imports no backend until asked."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

from harness.config import ConfigError

BACKENDS = ("tensorflow", "jax", "torch")
# Where JAX keeps the programs XLA compiled (JAX_COMPILATION_CACHE_DIR overrides it).
JAX_CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "harness" / "jax"
INSTALL = {
    "tensorflow": "make install",
    "jax": "make install-jax (requirements-jax.txt; a GPU machine: README, GPU machines)",
    "torch": "make install-torch (requirements-torch.txt)",
}


def check(backend: str) -> None:
    """A backend that is unknown or not installed → one-line ConfigError."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
    if importlib.util.find_spec(backend) is None:
        raise ConfigError(f"backend: {backend} is not installed here; install it with "
                          f"{INSTALL[backend]}")


def use(backend: str) -> None:
    """Make `backend` Keras's backend in this process and in the workers it starts. Must run
    before Keras is imported; a process whose Keras already runs another backend is an error."""
    check(backend)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise ConfigError(f"backend: {backend} was asked for, but Keras is already loaded "
                              f"with {keras.backend.backend()} in this process")
        return
    os.environ["KERAS_BACKEND"] = backend
    # JAX would take 75% of a GPU's memory at its first op; jobs sharing a GPU take what they use.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if backend == "jax":
        # XLA compiles each shape's training, validation and prediction steps, ~9 s of a
        # run's start here; the seeds of one size compile the same programs. JAX's own
        # compilation cache keeps them on disk for every later run and sweep (measured on
        # 2 cores, LSTM(8) on 11k examples: a run 15.1 s with an empty cache, 1.7 s once filled).
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(JAX_CACHE))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def name() -> str:
    import keras

    return keras.backend.backend()


def gpus() -> list[str]:
    """The GPUs the current backend sees, by name."""
    from harness.console import quiet_startup

    backend = name()
    with quiet_startup():  # the first query initialises CUDA (cuInit) and logs why it failed
        if backend == "tensorflow":
            import tensorflow as tf

            found = tf.config.list_physical_devices("GPU")
            for gpu in found:
                try:  # several small jobs may share one GPU
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:
                    pass  # already initialised by an earlier job in this process
            return [gpu.name for gpu in found]
        if backend == "jax":
            import jax

            # Its first query logs, at INFO through the job's logging, why there is no TPU.
            logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
            return [str(device) for device in jax.devices() if device.platform == "gpu"]
        import torch

        return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads for ops. Before the backend's first op; later calls keep what
    the first set."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised by an earlier job in this worker
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
    else:  # XLA reads its thread pool size when JAX's CPU client starts
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (f"{flags} --xla_cpu_multi_thread_eigen=false "
                                       f"intra_op_parallelism_threads={threads}").strip()


def loop_kernel(gpu: bool, cell: str) -> str:
    """What ran the recurrent loop: cudnn (an LSTM or GRU on a GPU: the runner builds them with
    use_cudnn=True, so Keras fails instead of falling back when cuDNN cannot run them),
    block_lstm (an LSTM on the CPU under TensorFlow, harness/fused.py) or keras (Keras's loop)."""
    if gpu and cell in ("lstm", "gru"):
        return "cudnn"
    if not gpu and cell == "lstm" and name() == "tensorflow":
        return "block_lstm"
    return "keras"
