"""The Keras 3 backend a sweep runs on (TensorFlow, JAX or PyTorch): chosen before Keras loads,
and the few things that differ between them — which GPUs there are, how many CPU threads, GPU
memory sharing, the kernel that runs a recurrent loop. Imports no backend until asked."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import tempfile
from pathlib import Path

from harness.config import ConfigError, check_backend
from harness.console import quiet_startup

# Where JAX keeps the programs XLA compiled (JAX_COMPILATION_CACHE_DIR overrides it).
JAX_CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "harness" / "jax"


def use(backend: str) -> None:
    """Make `backend` Keras's backend in this process and in the workers it starts. Must run
    before Keras is imported; a process whose Keras already runs another backend is an error."""
    check_backend(backend)
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


# Lock files, one per CPU, shared by every harness process of this user on this machine
# (HARNESS_CPU_LOCKS moves them): a process that holds one's exclusive lock is bound to that
# CPU. The OS drops a lock when its process ends, however it ends.
CPU_LOCKS = Path(os.environ.get("HARNESS_CPU_LOCKS")
                 or Path(tempfile.gettempdir()) / f"harness-cpus-{os.getuid()}")
_held_cpus: list = []  # this process's open lock files, kept for its whole life


def pin_to_free_cpus(count: int) -> list[int]:
    """Bind this process (all its threads, and those it starts later) to `count` CPUs of its
    own that no other harness process holds; without `count` free ones, leave it unbound.
    Once per process. Returns the CPUs bound to ([] when unbound).

    Why: two 1-thread JAX workers on this 2-core machine, left to the OS scheduler, train
    LSTM(128) at 17.5 s an epoch each; bound one to each core, at 13.5 s (measured side by
    side, 2026-11-24) — about what one alone takes."""
    if _held_cpus:
        return sorted(cpu for cpu, _ in _held_cpus)
    CPU_LOCKS.mkdir(parents=True, exist_ok=True)
    for cpu in sorted(os.sched_getaffinity(0)):
        lock = open(CPU_LOCKS / f"cpu{cpu}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _held_cpus.append((cpu, lock))
        if len(_held_cpus) == count:
            break
    if len(_held_cpus) < count:
        for _, lock in _held_cpus:
            lock.close()  # closing releases the lock
        _held_cpus.clear()
        return []
    cpus = {cpu for cpu, _ in _held_cpus}
    for thread in os.listdir("/proc/self/task"):  # a thread's own mask: set each one's
        try:
            os.sched_setaffinity(int(thread), cpus)
        except (ProcessLookupError, PermissionError):
            pass  # a thread that ended meanwhile
    return sorted(cpus)


def loop_kernel(gpu: bool, cell: str) -> str:
    """What ran the recurrent loop: cudnn (an LSTM or GRU on a GPU: the runner builds them with
    use_cudnn=True, so Keras fails instead of falling back when cuDNN cannot run them),
    block_lstm (an LSTM on the CPU under TensorFlow, harness/fused.py) or keras (Keras's loop)."""
    if gpu and cell in ("lstm", "gru"):
        return "cudnn"
    if not gpu and cell == "lstm" and name() == "tensorflow":
        return "block_lstm"
    return "keras"
