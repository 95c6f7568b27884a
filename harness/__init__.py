"""The unit-sweep harness. Its package start sets what TensorFlow and MLflow read once, at their
first import, which any harness module may do."""

import os

# TensorFlow's C++ log lines up to ERROR: a masked model logs "oneDNN supports DT_BOOL only on
# platforms with AVX-512" as an error per worker and runs on; failures still raise in Python.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's INFO lines
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "🏃 View run" per run
# MLflow's usage telemetry: offline (clusters, this project's machines) its thread only fails,
# and it has broken a client's request by unsetting an environment variable mid-request.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
