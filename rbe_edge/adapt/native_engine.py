"""The native training engine: the C core runs a compiled layer program on the planes.

NativeEngine turns a NativeProgram into the C structs of rbe_program_step
and rbe_program_forward. Trainable layers share their PackedTensor and
accumulator arrays with the Adapter, so each step changes the planes that
save() writes. The only float buffers are the activations of one batch.
"""
from typing import Callable, Dict, Optional

import numpy as np

from rbe_edge import _native
from rbe_edge.adapt.errors import AdaptError
from rbe_edge.adapt.native_program import NativeProgram
from rbe_edge.packed_tensor import PackedTensor
from rbe_edge.update import MODES

KINDS = {"dense": "RBE_LAYER_DENSE", "relu": "RBE_LAYER_RELU", "gelu": "RBE_LAYER_GELU",
         "gelu_tanh": "RBE_LAYER_GELU_TANH", "tanh": "RBE_LAYER_TANH",
         "layer_norm": "RBE_LAYER_LAYER_NORM"}
LOSSES = {"cross_entropy": "RBE_LOSS_CROSS_ENTROPY", "mse": "RBE_LOSS_MSE"}
RMS_DECAY = 0.999
REGENERATE = "write the training files again (rbe_edge.adapt.add_training_graphs)"
FORWARD_ROWS = 256


def new_scaling_states(names) -> Dict[str, object]:
    """Return a zeroed RMS gradient scaling state (rbe_rms_scaling) per tensor name."""
    states = {}
    for name in names:
        state = _native.ffi.new("rbe_rms_scaling *")
        state.decay = RMS_DECAY
        states[name] = state
    return states


class NativeEngine:
    """The C structs of one program, for forward passes and training steps in the C core.

    Args:
        program: the compiled head.
        packed_of: returns the PackedTensor of a packed name; trainable
            weights must come from the Adapter so that steps reach save().
        accum: int8 accumulators of the trainable weights (accumulate mode).
        scaling: the per-tensor RMS gradient scaling states (from
            new_scaling_states) of the "scaled" optimizer, or None for plain
            gradients. The caller owns them, so engines for different losses
            or outputs of one Adapter share them.
        loss: "cross_entropy" or "mse".
    """

    def __init__(self, program: NativeProgram, packed_of: Callable[[str], PackedTensor],
                 accum: Dict[str, np.ndarray], scaling: Optional[Dict[str, object]], loss: str,
                 where: str, threads: int = 1):
        self.program = program
        self.where = where
        self.threads = threads
        self._keep = []
        self._layers = _native.ffi.new("rbe_layer[]", len(program.layers))
        for index, spec in enumerate(program.layers):
            self._fill_layer(self._layers[index], spec, packed_of, accum, scaling)

        self._program = _native.ffi.new("rbe_program *")
        self._program.layers = self._layers
        self._program.layer_count = len(program.layers)
        self._program.input_width = program.input_width
        self._program.loss = getattr(_native.lib, LOSSES[loss])
        self.output_width = self._check()
        self._workspace = np.empty(0, np.float32)

    # ---- Building the C structs ----

    def _fill_layer(self, layer, spec: Dict, packed_of, accum, scaling) -> None:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise AdaptError(f"{self.where}: the native program has an unknown layer kind "
                             f"{kind!r}; {REGENERATE}")
        layer.kind = getattr(_native.lib, KINDS[kind])
        if kind == "dense":
            self._fill_dense(layer, spec, packed_of, accum, scaling)
        elif kind == "layer_norm":
            layer.width = int(spec["width"])
            layer.epsilon = float(spec["epsilon"])
            layer.gamma = self._vector(spec["gamma"], layer.width, packed_of)
            layer.beta = (self._vector(spec["beta"], layer.width, packed_of)
                          if spec.get("beta") is not None else _native.ffi.NULL)

    def _fill_dense(self, layer, spec: Dict, packed_of, accum, scaling) -> None:
        packed = self._packed(packed_of, spec["weight"])
        if packed.layout != spec["layout"] or (packed.rows, packed.cols) != \
                (spec["rows"], spec["cols"]):
            raise AdaptError(f"{self.where}: weight '{packed.name}' no longer matches the "
                             f"native program (layout or shape); {REGENERATE}")
        layout = packed._layout("auto")
        pointers, buffers = _native.plane_pointers(list(packed.planes), writable=True)
        self._keep += [layout, pointers, buffers, packed]
        layer.layout = layout
        layer.planes = pointers
        layer.planes_used = packed.bits if spec["trainable"] else int(spec["planes"])
        layer.scale = _native.pointer(packed.scale, "float[]")
        layer.zero = _native.pointer(packed.zero, "float[]")
        layer.bias = (self._vector(spec["bias"], packed.rows, packed_of)
                      if spec.get("bias") is not None else _native.ffi.NULL)
        layer.trainable = 1 if spec["trainable"] else 0
        if not spec["trainable"]:
            return

        state = accum.get(packed.name)
        layer.accum = (_native.writable_pointer(state, "int8_t[]") if state is not None
                       else _native.ffi.NULL)
        if scaling is not None:
            layer.scaling = scaling[packed.name]

    def _packed(self, packed_of, name: str) -> PackedTensor:
        try:
            return packed_of(name)
        except KeyError:
            raise AdaptError(f"{self.where}: the native program reads tensor '{name}', which "
                             f"model.rbe does not hold; {REGENERATE}") from None

    def _vector(self, reference, width: int, packed_of):
        """Return a float pointer to a per-channel parameter, kept alive by the engine."""
        if "tensor" in reference:
            packed = self._packed(packed_of, reference["tensor"])
            planes = min(int(reference["planes"]), packed.bits)
            values = packed.decode(planes).ravel()
        else:
            start, count = int(reference["offset"]), int(reference["count"])
            blob = np.frombuffer(bytes(self.program.params), "<f4")
            if start < 0 or start + count > blob.size:
                raise AdaptError(f"{self.where}: the native program's parameters are "
                                 f"truncated; {REGENERATE}")
            values = blob[start:start + count]
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.size != width:
            raise AdaptError(f"{self.where}: a parameter of the native program has "
                             f"{values.size} values, expected {width}")
        self._keep.append(values)
        return _native.pointer(values, "float[]")

    def _check(self) -> int:
        width = _native.ffi.new("size_t *")
        failed = _native.ffi.new("size_t *")
        status = _native.lib.rbe_program_check(self._program, width, failed)
        if status != _native.lib.RBE_OK:
            index = int(failed[0])
            node = (self.program.layers[index].get("node", "?")
                    if index < len(self.program.layers) else "the program")
            message = _native.ffi.string(_native.lib.rbe_status_message(status)).decode()
            raise AdaptError(f"{self.where}: the C core rejects layer {index} ('{node}') of the "
                             f"native program ({message}); {REGENERATE}")
        return int(width[0])

    # ---- Running ----

    def _workspace_for(self, rows: int):
        floats = _native.ffi.new("size_t *")
        _native.check(_native.lib.rbe_program_workspace(self._program, rows, floats),
                      "rbe_program_workspace")
        if self._workspace.size < floats[0]:
            self._workspace = np.empty(int(floats[0]), np.float32)
        return _native.writable_pointer(self._workspace, "float[]"), int(self._workspace.size)

    def rows_of(self, features: np.ndarray) -> np.ndarray:
        """View features [N, ..., width] as float32 rows [N * ..., width]."""
        if features.shape[-1] != self.program.input_width:
            raise AdaptError(f"{self.where}: '{self.program.input}' has last dimension "
                             f"{features.shape[-1]}, expected {self.program.input_width}")
        return np.ascontiguousarray(features.reshape(-1, self.program.input_width),
                                    dtype=np.float32)

    def forward(self, features: np.ndarray) -> np.ndarray:
        """Return the program output for features [N, ..., width] as [N, ..., out]."""
        rows = self.rows_of(features)
        result = np.empty((rows.shape[0], self.output_width), np.float32)
        for start in range(0, rows.shape[0], FORWARD_ROWS):
            part = rows[start:start + FORWARD_ROWS]
            workspace, size = self._workspace_for(part.shape[0])
            status = _native.lib.rbe_program_forward(
                self._program, _native.pointer(part, "float[]"), part.shape[0],
                _native.writable_pointer(result[start:start + FORWARD_ROWS], "float[]"),
                workspace, size, self.threads)
            _native.check(status, f"{self.where}: native forward pass")
        return result.reshape(features.shape[:-1] + (self.output_width,))

    def step(self, features: np.ndarray, labels: np.ndarray, *, loss: str, lr: float,
             mode: str, upper_planes: int, seed: int, step: int,
             fold: bool) -> Optional[float]:
        """Run one training step; return the mean loss, or None when it diverged.

        With `fold`, each row's accumulators are folded into the lower planes
        right after its step, as a following fold_lsb would fold them.
        """
        rows = self.rows_of(features)
        classes, targets = _native.ffi.NULL, _native.ffi.NULL
        if loss == "cross_entropy":
            labels = np.ascontiguousarray(labels.reshape(-1), dtype=np.int64)
            classes = _native.pointer(labels, "int64_t[]")
        else:
            labels = np.ascontiguousarray(labels.reshape(-1, self.output_width),
                                          dtype=np.float32)
            targets = _native.pointer(labels, "float[]")

        params = _native.ffi.new("rbe_update_params *")
        params.upper_planes = int(upper_planes)
        params.mode = MODES[mode]
        params.learning_rate = float(lr)
        params.seed = int(seed) & (2**64 - 1)
        params.step = int(step) & (2**64 - 1)
        value = _native.ffi.new("float *")
        workspace, size = self._workspace_for(rows.shape[0])
        status = _native.lib.rbe_program_step(
            self._program, _native.pointer(rows, "float[]"), rows.shape[0], classes, targets,
            params, 1 if fold else 0, value, workspace, size, self.threads)
        if status == _native.lib.RBE_ERR_VALUE:
            return None
        _native.check(status, f"{self.where}: native training step")
        return float(value[0])
