"""The layer test kit: one call holds every ``seqlayers`` layer to the same checks.

    from tests.layer_checks import run_layer_checks

    def test_tcn_block_passes_the_layer_kit(tmp_path):
        run_layer_checks(
            TCNBlock,
            init_kwargs={"filters": 8, "kernel_size": 3, "dilation_rate": 2},
            input_shape=(None, 4),          # per example; None marks the time axis
            expected_output_shape=(None, 8),
            tmp_path=tmp_path,
            masking=True,
        )

Shapes are given per example (no batch axis). ``None`` marks the time axis (always axis 1 of
the batched tensor); in an expected output shape it stands for the time length of the *first*
input. A layer with several inputs (attention) gets a list of input shapes and is called with
them as positional arguments; a layer with several outputs (``return_state``) gets a list of
expected output shapes.

The checks, each also callable on its own with a ``LayerUnderTest``:

- ``check_config_round_trip``: ``get_config()`` names every constructor argument, is JSON
  serializable, and ``from_config`` rebuilds a layer that computes the same function.
- ``check_output_shapes``: symbolic (``keras.Input``, unknown and fixed lengths) and eager calls
  give the documented shape for several sequence lengths.
- ``check_keras_file_round_trip``: ``.keras`` save and ``keras.models.load_model`` *without*
  ``custom_objects`` give identical outputs.
- ``check_export_in_fresh_process``: ``model.export()`` reloaded with ``tf.saved_model.load`` in a
  clean Python process that never imports the project (as TF Serving would; one per test
  session, serving every export) gives the same outputs.
- ``check_mixed_precision``: under ``mixed_float16`` outputs are float16, variables float32.
- ``check_jit_training_step``: one training step with ``jit_compile=True`` (``train_on_batch``:
  the step ``fit`` runs) gives a finite loss and moves every trainable variable.
- ``check_eager_training_step``: the same step run eagerly (``run_eagerly=True``), with the same
  two checks: what a configuration variant can break in training, without the compilation (see
  below).
- ``check_masking`` (mask-aware layers; trainable weights perturbed so that zero-initialized
  biases hide nothing): a padded batch, masked through ``keras.layers.Masking``,
  gives the same valid outputs as each sequence run alone, for post- and pre-padding; sequence
  outputs carry the first input's mask on, other outputs carry none.

The export and the XLA step trace and compile the whole model: together they take about three
quarters of a kit's time, and that time grows with the model (four TCN configurations side by
side in one model compile about three times as long as one), so sharing them saves little. A
layer therefore gets one full kit per code path of its own (a branch of its ``call``, a
sublayer it builds); a configuration that only varies what a kitted path runs with (an argument
passed through to a sublayer whose own kit covers that value, a size, a count) runs with
``export_and_xla=False``: every other check, and the eager training step.

Every failure is an ``AssertionError`` whose message names the check and the layer.
"""

from __future__ import annotations

import atexit
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import ops

Shape = tuple  # per-example shape; None marks the time axis

PROJECT_PACKAGES = ("seqlayers", "apps", "tuning")


class LayerCheckFailure(AssertionError):
    """A layer failed one of the kit's checks."""


@dataclass
class LayerUnderTest:
    """What the checks need to know about one layer configuration."""

    layer_cls: type
    init_kwargs: dict
    input_shapes: list[Shape]
    output_shapes: list[Shape]
    call_kwargs: dict = field(default_factory=dict)
    masking: bool = False
    sequence_lengths: Sequence[int] = (3, 8)
    batch_size: int = 2
    tolerance: float = 1e-5
    seed: int = 1234

    @property
    def name(self) -> str:
        return f"{self.layer_cls.__name__}({self.init_kwargs})"

    def make_layer(self, **overrides) -> keras.layers.Layer:
        return self.layer_cls(**{**self.init_kwargs, **overrides})

    def input_lengths(self, length: int) -> list[int]:
        # Different inputs get different lengths (query vs. key in attention), so a layer that
        # confuses them fails the shape checks.
        return [length + 2 * index for index in range(len(self.input_shapes))]

    def concrete_shape(self, shape: Shape, length: int) -> tuple:
        return tuple(length if size is None else size for size in shape)

    def random_inputs(self, length: int, batch_size: int | None = None, seed: int = 0) -> list:
        rng = np.random.default_rng(self.seed + seed)
        batch_size = batch_size or self.batch_size
        return [
            rng.standard_normal((batch_size, *self.concrete_shape(shape, input_length))).astype(
                "float32"
            )
            for shape, input_length in zip(
                self.input_shapes, self.input_lengths(length), strict=True
            )
        ]

    def expected_output_shapes(self, length: int | None, batch_size: int | None) -> list[tuple]:
        return [(batch_size, *self.concrete_shape(shape, length)) for shape in self.output_shapes]

    def output_has_time_axis(self, index: int) -> bool:
        shape = self.output_shapes[index]
        return len(shape) > 0 and shape[0] is None

    def call(self, layer, inputs, **extra):
        return layer(*inputs, **{**self.call_kwargs, **extra})

    def build_model(self, layer=None, *, masking: bool = False, length: int | None = None):
        """``Input -> [Masking ->] layer`` as a functional model; zeros are padding with masking."""
        layer = layer or self.make_layer()
        lengths = (
            self.input_lengths(length) if length is not None else [None] * len(self.input_shapes)
        )
        inputs = [
            keras.Input(shape=self.concrete_shape(shape, input_length), name=f"input_{index}")
            for index, (shape, input_length) in enumerate(
                zip(self.input_shapes, lengths, strict=True)
            )
        ]
        layer_inputs = (
            [keras.layers.Masking(mask_value=0.0)(x) for x in inputs] if masking else inputs
        )
        outputs = self.call(layer, layer_inputs)
        return keras.Model(inputs, outputs)


def _flat(outputs) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(outputs)]


def _fail(subject: LayerUnderTest, check: str, problem: str) -> LayerCheckFailure:
    return LayerCheckFailure(f"{check} failed for {subject.name}: {problem}")


def _assert_close(subject, check, actual, expected, what, tolerance=None):
    tolerance = subject.tolerance if tolerance is None else tolerance
    if len(actual) != len(expected):
        raise _fail(subject, check, f"{what}: {len(actual)} outputs, expected {len(expected)}")
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if a.shape != e.shape:
            raise _fail(subject, check, f"{what}: output {index} shape {a.shape} != {e.shape}")
        if tolerance == 0:
            equal = np.array_equal(a, e, equal_nan=True)
        else:
            equal = np.allclose(a, e, rtol=tolerance, atol=tolerance, equal_nan=True)
        if not equal:
            worst = float(np.nanmax(np.abs(a.astype("float64") - e.astype("float64"))))
            raise _fail(
                subject, check, f"{what}: output {index} differs (max abs diff {worst:.3g})"
            )


def _constructor_arguments(layer_cls) -> list[str]:
    parameters = inspect.signature(layer_cls.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def check_config_round_trip(subject: LayerUnderTest) -> None:
    check = "config round trip"
    layer = subject.make_layer()
    inputs = subject.random_inputs(subject.sequence_lengths[0])
    expected = _flat(subject.call(layer, inputs, training=False))
    config = layer.get_config()
    missing = [name for name in _constructor_arguments(subject.layer_cls) if name not in config]
    if missing:
        raise _fail(subject, check, f"get_config() leaves out constructor argument(s) {missing}")
    try:
        serialized = json.dumps(keras.saving.serialize_keras_object(layer))
    except (TypeError, ValueError) as error:
        raise _fail(subject, check, f"config is not JSON serializable: {error}") from error
    try:
        clone = subject.layer_cls.from_config(config)
        restored = keras.saving.deserialize_keras_object(json.loads(serialized))
    except Exception as error:
        raise _fail(subject, check, f"from_config raised {error!r}") from error
    for rebuilt in (clone, restored):
        if json.dumps(rebuilt.get_config(), sort_keys=True) != json.dumps(config, sort_keys=True):
            raise _fail(subject, check, "from_config(config).get_config() != config")
        subject.call(rebuilt, inputs, training=False)  # builds the weights
        rebuilt.set_weights(layer.get_weights())
        actual = _flat(subject.call(rebuilt, inputs, training=False))
        _assert_close(subject, check, actual, expected, "the rebuilt layer's outputs")


def check_output_shapes(subject: LayerUnderTest) -> None:
    check = "output shapes"

    def symbolic_shapes(length):
        model = subject.build_model(length=length)
        return [tuple(x.shape) for x in keras.tree.flatten(model.outputs)]

    actual = symbolic_shapes(None)
    expected = subject.expected_output_shapes(None, None)
    if actual != expected:
        raise _fail(subject, check, f"symbolic, unknown length: {actual} != {expected}")
    layer = subject.make_layer()
    for length in subject.sequence_lengths:
        actual = symbolic_shapes(length)
        expected = subject.expected_output_shapes(length, None)
        if actual != expected:
            raise _fail(subject, check, f"symbolic, length {length}: {actual} != {expected}")
        outputs = _flat(subject.call(layer, subject.random_inputs(length), training=False))
        actual = [x.shape for x in outputs]
        expected = subject.expected_output_shapes(length, subject.batch_size)
        if actual != expected:
            raise _fail(subject, check, f"eager, length {length}: {actual} != {expected}")


def _model_outputs_for_lengths(subject, model, masking):
    results = {}
    for length in subject.sequence_lengths:
        inputs = subject.random_inputs(length, seed=length)
        if masking:
            inputs = _pad_batch(subject, _ragged_sequences(subject, length), "post")
        results[length] = (inputs, _flat(model(inputs, training=False)))
    return results


def check_keras_file_round_trip(subject: LayerUnderTest, tmp_path: Path) -> None:
    check = ".keras save/load"
    Path(tmp_path).mkdir(parents=True, exist_ok=True)
    model = subject.build_model(masking=subject.masking)
    path = Path(tmp_path) / "model.keras"
    model.save(path)
    try:
        loaded = keras.models.load_model(path)  # deliberately no custom_objects
    except Exception as error:
        raise _fail(
            subject, check, f"load_model without custom_objects raised {error!r}"
        ) from error
    for length, (inputs, expected) in _model_outputs_for_lengths(
        subject, model, subject.masking
    ).items():
        actual = _flat(loaded(inputs, training=False))
        _assert_close(subject, check, actual, expected, f"length {length}", tolerance=0)


# A clean Python process, started once per test session with -I (isolated mode: neither the
# working directory nor PYTHONPATH can supply the project), that imports only NumPy and
# TensorFlow and serves one export per request: starting TensorFlow once instead of once per
# layer configuration saves about 4 s a kit. After each request it reports whether anything
# imported a project package, so a SavedModel that needs the project still fails its check.
_CLEAN_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    project = set(sys.argv[1:])
    for line in sys.stdin:
        request = json.loads(line)
        try:
            serving = tf.saved_model.load(request["export"]).signatures["serving_default"]
            inputs = np.load(request["inputs"])
            results = {}
            for length in sorted({key.split("/")[0] for key in inputs.files}):
                feed = {key.split("/")[1]: tf.constant(inputs[key]) for key in inputs.files
                        if key.split("/")[0] == length}
                for name, value in serving(**feed).items():
                    results[f"{length}/{name}"] = value.numpy()
            np.savez(request["outputs"], **results)
            imported = sorted({name.split(".")[0] for name in sys.modules} & project)
            error = f"the SavedModel imported project packages: {imported}" if imported else ""
        except Exception as exception:  # reported to the check, which fails
            error = repr(exception)
        print(json.dumps({"error": error}), flush=True)
    """
)


class _CleanWorker:
    """The session's clean process (see ``_CLEAN_WORKER_SCRIPT``), started on first use."""

    process: subprocess.Popen | None = None

    @classmethod
    def serve(cls, export_dir: Path, inputs: Path, outputs: Path) -> str:
        """Runs the export on ``inputs`` into ``outputs``; returns an error, or ""."""
        if cls.process is None or cls.process.poll() is not None:
            log = tempfile.NamedTemporaryFile("w+", prefix="clean-worker-", suffix=".log")
            cls.log = log
            cls.process = subprocess.Popen(
                [sys.executable, "-I", "-c", _CLEAN_WORKER_SCRIPT, *PROJECT_PACKAGES],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=tempfile.gettempdir(),
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            atexit.register(cls.process.kill)
        request = {"export": str(export_dir), "inputs": str(inputs), "outputs": str(outputs)}
        cls.process.stdin.write(json.dumps(request) + "\n")
        cls.process.stdin.flush()
        reply = cls.process.stdout.readline()
        if not reply:
            cls.log.seek(0)
            return f"the clean process died:\n{cls.log.read()[-3000:]}"
        return json.loads(reply)["error"]


def check_export_in_fresh_process(subject: LayerUnderTest, tmp_path: Path) -> None:
    check = "export in a fresh process"
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = subject.build_model(masking=subject.masking)
    export_dir = tmp_path / "export"
    model.export(str(export_dir), format="tf_saved_model", verbose=False)
    cases = _model_outputs_for_lengths(subject, model, subject.masking)
    feed = {
        f"{length}/input_{index}": x
        for length, (inputs, _) in cases.items()
        for index, x in enumerate(inputs)
    }
    np.savez(tmp_path / "inputs.npz", **feed)
    error = _CleanWorker.serve(
        export_dir.resolve(),
        (tmp_path / "inputs.npz").resolve(),
        (tmp_path / "outputs.npz").resolve(),
    )
    if error:
        raise _fail(subject, check, f"the fresh process failed: {error}")
    served = np.load(tmp_path / "outputs.npz")
    for length, (_, expected) in cases.items():
        names = sorted(
            (key for key in served.files if key.split("/")[0] == str(length)),
            key=lambda key: int(key.rsplit("_", 1)[-1]) if key[-1].isdigit() else 0,
        )
        _assert_close(subject, check, [served[n] for n in names], expected, f"length {length}")


def check_mixed_precision(subject: LayerUnderTest) -> None:
    check = "mixed_float16"
    # The policy goes to this layer only (not set globally), so sublayers that forget
    # dtype=self.dtype_policy compute in float32 and are caught.
    layer = subject.make_layer(dtype="mixed_float16")
    inputs = subject.random_inputs(max(subject.sequence_lengths))
    outputs = keras.tree.flatten(subject.call(layer, inputs, training=False))
    for index, output in enumerate(outputs):
        dtype = keras.backend.standardize_dtype(output.dtype)
        if "float" in dtype and dtype != "float16":
            raise _fail(subject, check, f"output {index} is {dtype}, expected float16")
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(output))):
            raise _fail(subject, check, f"output {index} has inf or NaN")
    wrong = [
        f"{v.path}: {v.dtype}"
        for v in layer.weights
        if "float" in v.dtype and keras.backend.standardize_dtype(v.dtype) != "float32"
    ]
    if wrong:
        raise _fail(subject, check, f"variables must stay float32, got {wrong}")


def _per_step_mse(targets, predictions):
    """Mean squared error per example, or per example and step for outputs with a time axis.

    Keras weights a loss with the output's mask (``[batch, time]``), so the loss must keep
    exactly those axes, whatever the rank of the output (a ConvLSTM's is 5).
    """
    rank = len(predictions.shape)
    axes = tuple(range(2, rank)) if rank > 2 else (rank - 1,)
    return ops.mean(ops.square(targets - predictions), axis=axes)


def check_jit_training_step(subject: LayerUnderTest) -> None:
    _check_training_step(subject, "XLA training step", jit_compile=True)


def check_eager_training_step(subject: LayerUnderTest) -> None:
    _check_training_step(subject, "eager training step", run_eagerly=True)


def _check_training_step(subject: LayerUnderTest, check: str, **compile_options) -> None:
    model = subject.build_model(masking=subject.masking)
    length = max(subject.sequence_lengths)
    if subject.masking:
        inputs = _pad_batch(subject, _ragged_sequences(subject, length), "post")
    else:
        inputs = subject.random_inputs(length)
    rng = np.random.default_rng(subject.seed)
    targets = [
        rng.standard_normal(shape).astype("float32")
        for shape in subject.expected_output_shapes(length, len(inputs[0]))
    ]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=_per_step_mse, **compile_options)
    if compile_options.get("jit_compile") and model.jit_compile is not True:
        raise _fail(subject, check, "Keras refused jit_compile=True for this layer")
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    try:
        # The train step that fit() compiles, without fit's tf.data pipeline around it (which
        # adds seconds of tracing and nothing about the layer).
        loss = model.train_on_batch(inputs, targets, return_dict=True)["loss"]
    except Exception as error:
        raise _fail(subject, check, f"the training step raised {error!r}") from error
    if not np.isfinite(loss):
        raise _fail(subject, check, f"loss is {loss}")
    frozen = [
        v.path
        for v, old in zip(model.trainable_variables, before, strict=True)
        if np.array_equal(keras.ops.convert_to_numpy(v), old)
    ]
    if frozen:
        raise _fail(subject, check, f"no gradient reached {frozen}")


def _ragged_sequences(subject: LayerUnderTest, length: int) -> list[list[np.ndarray]]:
    """Three examples of different lengths per input (the longest is ``length``), unpadded."""
    rng = np.random.default_rng(subject.seed + 7)
    examples = []
    for example_length in (max(1, length // 3), max(1, length - 2), length):
        examples.append(
            [
                rng.standard_normal(subject.concrete_shape(shape, input_length)).astype("float32")
                for shape, input_length in zip(
                    subject.input_shapes, subject.input_lengths(example_length), strict=True
                )
            ]
        )
    return examples


def _pad_batch(subject, examples, padding: str) -> list[np.ndarray]:
    padded = []
    for index in range(len(subject.input_shapes)):
        sequences = [example[index] for example in examples]
        longest = max(len(s) for s in sequences)
        batch = np.zeros((len(sequences), longest, *sequences[0].shape[1:]), "float32")
        for row, sequence in enumerate(sequences):
            if padding == "post":
                batch[row, : len(sequence)] = sequence
            else:
                batch[row, longest - len(sequence) :] = sequence
        padded.append(batch)
    return padded


@keras.saving.register_keras_serializable(package="layer_checks")
class MaskReader(keras.layers.Layer):
    """Returns the Keras mask it receives as float32 (batch, time), or -1s when there is none."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return -ops.ones(ops.shape(inputs)[:2], dtype="float32")
        return ops.cast(mask, "float32")

    def compute_mask(self, inputs, mask=None):
        return None


def _perturb_trainable_weights(layer: keras.layers.Layer, seed: int) -> None:
    """Adds noise to every trainable weight, so zero-initialized biases cannot hide a bug."""
    rng = np.random.default_rng(seed)
    for variable in layer.trainable_weights:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign(value + 0.3 * rng.standard_normal(value.shape).astype(value.dtype))


def check_masking(subject: LayerUnderTest) -> None:
    check = "masking"
    layer = subject.make_layer()
    masked_model = subject.build_model(layer, masking=True)
    plain_model = subject.build_model(layer)
    _perturb_trainable_weights(layer, subject.seed)
    # Reads the mask each output carries: -1s where there is none.
    mask_model = keras.Model(
        masked_model.inputs,
        [MaskReader()(x) for x in keras.tree.flatten(masked_model.outputs)],
    )
    for length in subject.sequence_lengths:
        examples = _ragged_sequences(subject, length)
        for padding in ("post", "pre"):
            padded = _pad_batch(subject, examples, padding)
            batch_outputs = _flat(masked_model(padded, training=False))
            for row, example in enumerate(examples):
                alone = _flat(plain_model([x[None] for x in example], training=False))
                valid = []
                for index, output in enumerate(batch_outputs):
                    output = output[row : row + 1]
                    if subject.output_has_time_axis(index):
                        steps = alone[index].shape[1]
                        output = output[:, :steps] if padding == "post" else output[:, -steps:]
                    valid.append(output)
                _assert_close(
                    subject,
                    check,
                    valid,
                    alone,
                    f"{padding}-padded batch vs. example {row} alone (length {length})",
                )
            first_input_mask = np.any(padded[0] != 0, axis=tuple(range(2, padded[0].ndim)))
            for index, mask in enumerate(_flat(mask_model(padded, training=False))):
                if subject.output_has_time_axis(index):
                    if not np.array_equal(mask, first_input_mask.astype("float32")):
                        raise _fail(
                            subject,
                            check,
                            f"output {index} does not carry the input mask on ({padding}-padded)",
                        )
                elif not np.all(mask == -1):
                    raise _fail(subject, check, f"output {index} has no time axis but a mask")


def run_layer_checks(
    layer_cls: type,
    init_kwargs: dict,
    input_shape: Shape | list[Shape],
    expected_output_shape: Shape | list[Shape],
    *,
    tmp_path: Path,
    call_kwargs: dict | None = None,
    masking: bool = False,
    sequence_lengths: Sequence[int] = (3, 8),
    batch_size: int = 2,
    tolerance: float = 1e-5,
    export_and_xla: bool = True,
) -> None:
    """Runs every check of the kit on one layer configuration; see the module docstring.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: per-example input shape with ``None`` for the time axis, or a list of them
            for a layer called with several positional inputs.
        expected_output_shape: the documented per-example output shape(s); ``None`` stands for
            the time length of the first input.
        tmp_path: a scratch directory (pytest's ``tmp_path``).
        call_kwargs: extra keyword arguments for every call (e.g. ``use_causal_mask=True``).
        masking: the layer is mask-aware: run ``check_masking`` too.
        sequence_lengths: the lengths to try (at least two, one of them short).
        batch_size: examples per batch.
        tolerance: absolute and relative tolerance where outputs are compared numerically.
        export_and_xla: run the export in a fresh process and the XLA training step. False
            only for a configuration variant whose code paths a full kit of this layer (or of
            the sublayer that the varied argument is passed to) exports and compiles already:
            the variant gets the eager training step instead, and every other check.
    """
    single_input = not isinstance(input_shape, list)
    single_output = not isinstance(expected_output_shape, list)
    subject = LayerUnderTest(
        layer_cls=layer_cls,
        init_kwargs=dict(init_kwargs),
        input_shapes=[tuple(input_shape)] if single_input else [tuple(s) for s in input_shape],
        output_shapes=[tuple(expected_output_shape)]
        if single_output
        else [tuple(s) for s in expected_output_shape],
        call_kwargs=dict(call_kwargs or {}),
        masking=masking,
        sequence_lengths=tuple(sequence_lengths),
        batch_size=batch_size,
        tolerance=tolerance,
    )
    if len(subject.sequence_lengths) < 2:
        raise ValueError(f"give at least two sequence lengths, got {sequence_lengths!r}")
    tmp_path = Path(tmp_path)
    check_config_round_trip(subject)
    check_output_shapes(subject)
    check_keras_file_round_trip(subject, tmp_path / "keras_file")
    if export_and_xla:
        check_export_in_fresh_process(subject, tmp_path / "export")
    check_mixed_precision(subject)
    if export_and_xla:
        check_jit_training_step(subject)
    else:
        check_eager_training_step(subject)
    if masking:
        check_masking(subject)
