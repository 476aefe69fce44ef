"""One line describing where a benchmark ran, for bench/RESULTS.md."""

import os
import platform
import time
from pathlib import Path


def describe_machine() -> str:
    """Date, CPU model, core count and the versions of Python, TensorFlow and Keras."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
