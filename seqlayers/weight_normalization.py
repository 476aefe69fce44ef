"""Weight normalization (Salimans & Kingma, 2016) as a serializable Keras wrapper."""

import keras
from keras import ops

from seqlayers._argument_checks import check_positive_number


@keras.saving.register_keras_serializable(package="seqlayers")
class WeightNormalization(keras.layers.Wrapper):
    """Reparameterizes the kernel of a wrapped layer as a direction and a magnitude.

    The wrapped layer computes with

        w = g * v / ||v||

    where ``v`` is the wrapped layer's own ``kernel`` variable (the direction), ``g`` is the
    wrapper's ``magnitude`` variable with one entry per output unit, and the norm is taken over
    every kernel axis but the last (the output units). Decoupling the length of each weight
    vector from its direction speeds up and stabilizes gradient descent (Salimans & Kingma,
    "Weight Normalization: A Simple Reparameterization to Accelerate Training of Deep Neural
    Networks", NeurIPS 2016, https://arxiv.org/abs/1602.07868).

    ``g`` starts at ``||v||``, so a freshly built wrapper computes exactly what the unwrapped
    layer would; the paper's optional data-dependent initialization is not performed.

    Nothing is assigned during the call: ``w`` is handed to the wrapped layer through a
    ``keras.StatelessScope``, so gradients reach ``v`` and ``g`` and the layer stays
    XLA-compilable and exportable. The norm is computed in float32 under mixed precision.

    Quantization: ``model.quantize("int8")`` quantizes a wrapped layer that Keras quantizes
    (``keras.layers.Dense``): its kernel becomes ``q`` (int8) with one scale ``s`` per output
    unit, ``v ≈ q / s``. The wrapper then computes with ``w = g * q / ||q||``, the
    normalization of the quantized direction, by handing the layer the scale ``||q|| / g``
    instead of ``s``: the int8 product stays int8. A layer Keras does not quantize
    (``keras.layers.Conv1D`` in Keras 3.15) stays float, with Keras' warning. Other modes
    (int4, float8, GPTQ, AWQ) are a NotImplementedError when the wrapper is called.

    Args:
        layer: a layer with a ``kernel`` variable whose last axis is its output units, such as
            ``keras.layers.Conv1D`` or ``keras.layers.Dense``.
        epsilon: float, default ``1e-12``. Guards the division when ``||v||`` is zero.

    Call arguments:
        inputs: whatever the wrapped layer takes; other arguments are passed on to it.

    Returns:
        The wrapped layer's output.

    Example:

    >>> conv = WeightNormalization(keras.layers.Conv1D(16, 3, padding="causal"))
    >>> print(conv(keras.ops.zeros((2, 10, 4))).shape)
    (2, 10, 16)
    """

    def __init__(self, layer, epsilon=1e-12, **kwargs):
        check_positive_number("epsilon", epsilon)
        super().__init__(layer, **kwargs)
        self.epsilon = epsilon

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel = getattr(self.layer, "kernel", None)
        if not isinstance(kernel, keras.Variable):
            raise ValueError(
                "WeightNormalization needs a layer with a `kernel` variable, "
                f"got {self.layer.__class__.__name__} named {self.layer.name!r}"
            )
        self.magnitude = self.add_weight(
            name="magnitude", shape=(kernel.shape[-1],), initializer="ones"
        )
        self.magnitude.assign(self._kernel_norm(ops.convert_to_tensor(kernel)))
        self.built = True

    def _kernel_norm(self, kernel):
        # [..., units] -> [units]; float32 so that large kernels cannot overflow float16.
        kernel = ops.cast(kernel, "float32")
        squared_norm = ops.sum(ops.square(kernel), axis=tuple(range(len(kernel.shape) - 1)))
        return ops.sqrt(ops.maximum(squared_norm, self.epsilon**2))

    def _check_quantization_mode(self):
        mode = self.layer.quantization_mode
        scale = getattr(self.layer, "kernel_scale", None)
        if mode not in (None, "int8") or (
            mode == "int8" and tuple(getattr(scale, "shape", ())) != tuple(self.magnitude.shape)
        ):
            raise NotImplementedError(
                f"WeightNormalization {self.name!r} normalizes a float kernel, or an int8 one "
                "with one scale per output unit (keras.layers.Dense's), but its layer "
                f"{self.layer.name!r} is quantized to {mode!r}"
            )
        return mode

    def normalized_kernel(self):
        """The kernel the wrapped layer computes with, ``g * v / ||v||`` (float32).

        For a layer quantized to int8, ``g * q / ||q||`` (see the class docstring).
        """
        self._check_quantization_mode()
        direction = ops.cast(self.layer.kernel, "float32")
        scale = ops.cast(self.magnitude, "float32") / self._kernel_norm(direction)
        return direction * scale

    def call(self, inputs, *args, **kwargs):
        if self._check_quantization_mode() == "int8":
            # The int8 layer computes with q / kernel_scale: the scale ||q|| / g makes that
            # g * q / ||q||, and q stays int8. [units]
            scale = self._kernel_norm(self.layer.kernel) / ops.cast(self.magnitude, "float32")
            state_mapping = [(self.layer.kernel_scale, scale)]
        else:
            state_mapping = [(self.layer.kernel, self.normalized_kernel())]
        with keras.StatelessScope(state_mapping=state_mapping):
            return self.layer(inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
