"""Convert MediaPipe's BlazePose tflite models into our own torch modules, safetensors weights and ONNX files.

    python -m realtime_hmr.train.convert_blazepose [--out realtime_hmr/assets/blazepose] [--weights-out build/blazepose]

Reads ``pose_detection.tflite`` and ``pose_landmark_full.tflite`` (Apache-2.0) from the installed
``mediapipe==0.10.21`` wheel. The flatbuffer is parsed with the PyPI ``tflite`` package (TensorFlow's schema);
dense fp32 weights come from running the graph once with ``ai-edge-litert`` and ``experimental_preserve_all_tensors``
and reading the outputs of its DEQUANTIZE (fp16) and DENSIFY (sparse) ops. The graph becomes a JSON spec that
:class:`realtime_hmr.models.blazepose.TfliteNet` builds torch layers from; the net is exported to ONNX with a dynamic
batch axis (example batch 2) and compared against the tflite interpreter before anything is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODELS = {  # our name -> (path inside the mediapipe wheel, semantic names of its outputs in tflite order)
    "pose_detection": ("modules/pose_detection/pose_detection.tflite", ["boxes", "scores"]),
    "pose_landmark_full": (
        "modules/pose_landmark/pose_landmark_full.tflite",
        ["landmarks", "presence", "segmentation", "heatmap", "world"],
    ),
}
# The ONNX files made from each: the landmark net also without its segmentation decoder (the 256x256 mask branch
# costs ONNX Runtime more than the rest of the net; the tracker loads the full model only when a mask is asked for).
# Both landmark variants also give "features": the net's last two feature maps (4x4 and 2x2, 288 channels) as 20
# tokens, the image evidence the mesh decoder may read besides the landmarks (free: they are computed anyway).
VARIANTS = {
    "pose_detection": {"pose_detection": ["boxes", "scores"]},
    "pose_landmark_full": {
        "pose_landmark_full": ["landmarks", "presence", "segmentation", "heatmap", "world", "features"],
        "pose_landmark_full_nomask": ["landmarks", "presence", "heatmap", "world", "features"],
    },
}
WEIGHT_OPS = ("DEQUANTIZE", "DENSIFY")
ACT = {0: None, 1: "relu", 2: "relu_n1_1", 3: "relu6", 4: "tanh"}
PAD = {0: "SAME", 1: "VALID"}
COMMAND = "python -m realtime_hmr.train.convert_blazepose"
NOTICE = """BlazePose models (pose_detection, pose_landmark_full) by Google LLC, from the MediaPipe project
(https://github.com/google-ai-edge/mediapipe), mediapipe==0.10.21 wheel, licensed under the Apache License 2.0
(see LICENSE in this folder). Converted to ONNX by realtime_hmr ({command}); the weights are unchanged
(fp16/sparse tflite weights expanded to fp32), the graph is re-expressed operator by operator.
"""


def _options(op, cls):
    import tflite

    table = op.BuiltinOptions()
    opt = getattr(tflite, cls)()
    opt.Init(table.Bytes, table.Pos)
    return opt


def read_graph(path: str | Path) -> dict:
    """Parse a tflite flatbuffer into {"ops": [...], "tensors": {id: shape}, "inputs", "outputs"}."""
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    g = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        attrs: dict = {}
        if kind == "CONV_2D":
            o = _options(op, "Conv2DOptions")
            attrs = dict(stride=[o.StrideH(), o.StrideW()], padding=PAD[o.Padding()],
                         act=ACT[o.FusedActivationFunction()], dilation=[o.DilationHFactor(), o.DilationWFactor()])
        elif kind == "DEPTHWISE_CONV_2D":
            o = _options(op, "DepthwiseConv2DOptions")
            attrs = dict(stride=[o.StrideH(), o.StrideW()], padding=PAD[o.Padding()],
                         act=ACT[o.FusedActivationFunction()], dilation=[o.DilationHFactor(), o.DilationWFactor()],
                         multiplier=o.DepthMultiplier())
        elif kind == "ADD":
            attrs = dict(act=ACT[_options(op, "AddOptions").FusedActivationFunction()])
        elif kind == "CONCATENATION":
            o = _options(op, "ConcatenationOptions")
            attrs = dict(axis=o.Axis(), act=ACT[o.FusedActivationFunction()])
        elif kind == "MAX_POOL_2D":
            o = _options(op, "Pool2DOptions")
            attrs = dict(stride=[o.StrideH(), o.StrideW()], padding=PAD[o.Padding()],
                         act=ACT[o.FusedActivationFunction()], kernel=[o.FilterHeight(), o.FilterWidth()])
        elif kind == "RESIZE_BILINEAR":
            o = _options(op, "ResizeBilinearOptions")
            attrs = dict(align_corners=bool(o.AlignCorners()), half_pixel_centers=bool(o.HalfPixelCenters()))
        elif kind == "DEPTH_TO_SPACE":
            attrs = dict(block=_options(op, "DepthToSpaceOptions").BlockSize())
        ops.append(dict(type=kind, inputs=[int(t) for t in op.InputsAsNumpy()],
                        outputs=[int(t) for t in op.OutputsAsNumpy()], attrs=attrs))
    tensors = {}
    for t in range(g.TensorsLength()):
        ten = g.Tensors(t)
        tensors[t] = dict(shape=[int(s) for s in ten.ShapeAsNumpy()] if ten.ShapeLength() else [],
                          name=ten.Name().decode(), buffer=model.Buffers(ten.Buffer()).DataLength() > 0)
    return dict(ops=ops, tensors=tensors, inputs=[int(t) for t in g.InputsAsNumpy()],
                outputs=[int(t) for t in g.OutputsAsNumpy()])


def tflite_interpreter(path: str | Path, preserve: bool = False):
    """The reference interpreter without XNNPACK (so every builtin op runs and its tensors stay readable)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=preserve, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def graph_spec(path: str | Path, out_names: list[str]) -> tuple[dict, dict[str, np.ndarray]]:
    """The compute graph (weight ops folded away) as a JSON-able spec, and its constants as dense fp32 arrays."""
    graph = read_graph(path)
    it = tflite_interpreter(path, preserve=True)
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    it.invoke()
    const = {t for t, d in graph["tensors"].items() if d["buffer"]}
    const |= {o["outputs"][0] for o in graph["ops"] if o["type"] in WEIGHT_OPS}
    ops = [o for o in graph["ops"] if o["type"] not in WEIGHT_OPS]
    for o in ops:
        if o["type"] == "PAD":
            o["attrs"]["paddings"] = np.array(it.get_tensor(o["inputs"][1])).tolist()
    used = {t for o in ops for t in o["inputs"] if t in const}
    consts = {f"t{t}": np.array(it.get_tensor(t)) for t in sorted(used)}
    shapes = {t: graph["tensors"][t]["shape"] for o in ops for t in o["inputs"] + o["outputs"]}
    spec = dict(ops=ops, input=graph["inputs"][0], outputs=dict(zip(out_names, graph["outputs"], strict=True)),
                shapes={str(k): v for k, v in shapes.items()}, consts=sorted(used))
    return spec, consts


def feature_taps(spec: dict) -> list[int]:
    """The landmark net's image-feature tensors, found by structure: the last 4x4 feature map, and the 2x2 map the
    output heads (landmarks, world, presence: 2x2 VALID convolutions) read."""
    producer = {o["outputs"][0]: o for o in spec["ops"]}
    head = producer[producer[spec["outputs"]["world"]]["inputs"][0]]  # RESHAPE <- CONV_2D
    last2 = head["inputs"][0]
    last4 = [o["outputs"][0] for o in spec["ops"] if spec["shapes"][str(o["outputs"][0])][1:3] == [4, 4]][-1]
    return [last4, last2]


def _rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    """max |x - ref| over the reference's value range (segmentation logits reach -1e3; fp32 sums differ there)."""
    return float(np.abs(x - ref).max() / max(1.0, float(ref.max() - ref.min())))


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _subset(net, names: list[str]):
    """The net with a fixed subset of its outputs, as a tuple (for export)."""
    import torch

    class Subset(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            outs = self.net(x)
            return tuple(outs[k] for k in names)

    return Subset().eval()


def fp16_storage(model) -> int:
    """Store fp32 initializers that fp16 holds exactly (the tflite weights were fp16) as fp16 + Cast; lossless,
    halves the file. ONNX Runtime folds the casts when the session is created. Returns the tensors converted."""
    import onnx
    from onnx import helper, numpy_helper

    g, casts, n = model.graph, [], 0
    for init in list(g.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        h = a.astype(np.float16)
        if a.size < 64 or not np.array_equal(h.astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(h, name + "_fp16"))
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT, name=name + "_cast"))
        n += 1
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return n


def convert(name: str, src: Path, out: Path, weights_out: Path, opset: int = 17) -> list[dict]:
    """One tflite model: spec + safetensors + one ONNX per variant (+ JSON), each checked against tflite."""
    import torch
    from safetensors.torch import save_file

    from realtime_hmr.models.blazepose import TfliteNet

    out_names = MODELS[name][1]
    spec, consts = graph_spec(src, out_names)
    if "world" in out_names:
        spec["taps"] = {"features": feature_taps(spec)}
    net = TfliteNet(spec, {k: torch.from_numpy(v) for k, v in consts.items()}).eval()
    size = spec["shapes"][str(spec["input"])][1:]
    x = torch.from_numpy(np.random.default_rng(0).random((2, *size), dtype=np.float32))
    if name == "pose_detection":
        x = x * 2 - 1
    # Reference: tflite, one image at a time (inner tensors kept for the taps).
    it = tflite_interpreter(src, preserve=bool(spec.get("taps")))
    ref = {k: [] for k in [*out_names, *spec.get("taps", {})]}
    for xi in x.numpy():
        it.set_tensor(it.get_input_details()[0]["index"], xi[None])
        it.invoke()
        for k, t in spec["outputs"].items():
            ref[k].append(it.get_tensor(t)[0])
        for k, ids in spec.get("taps", {}).items():
            ref[k].append(np.concatenate([it.get_tensor(t)[0].reshape(-1, it.get_tensor(t).shape[-1]) for t in ids]))
    ref = {k: np.stack(v) for k, v in ref.items()}
    with torch.no_grad():
        ours = {k: v.numpy() for k, v in net(x).items()}
    err_torch = {k: _rel_err(ours[k], ref[k]) for k in ref}
    weights_out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights_out / f"{name}.safetensors"),
              metadata={"spec": json.dumps(spec)})
    # shipped for the torch backend: the same weights stored as fp16 (lossless: tflite's weights are fp16)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(out / f"{name}.safetensors"),
              metadata={"spec": json.dumps(spec)})
    metas = []
    for variant, names in VARIANTS[name].items():
        metas.append(export(variant, name, _subset(net, names), names, x, ref, err_torch, spec, src, out, opset))
    return metas


def export(variant: str, name: str, net, names: list[str], x, ref: dict, err_torch: dict, spec: dict, src: Path,
           out: Path, opset: int) -> dict:
    import onnx
    import onnxruntime as ort
    import torch

    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{variant}.onnx"
    torch.onnx.export(net, (x,), str(onnx_path), input_names=["input"], output_names=names, opset_version=opset,
                      dynamic_axes={"input": {0: "batch"}, **{k: {0: "batch"} for k in names}}, dynamo=False)
    model = onnx.load(str(onnx_path))
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch_dim.dim_param:
        raise RuntimeError(f"{variant}: ONNX batch axis was frozen to {batch_dim.dim_value}")
    n16 = fp16_storage(model)
    model.producer_name = "realtime_hmr"
    for k, v in dict(source=f"mediapipe==0.10.21/{MODELS[name][0]}", license="Apache-2.0", command=COMMAND).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(names, sess.run(names, {"input": x.numpy()}), strict=True))
    err_onnx = {k: _rel_err(got[k], ref[k]) for k in names}
    size = spec["shapes"][str(spec["input"])][1:]
    meta = dict(
        name=variant, source=f"mediapipe==0.10.21 wheel: mediapipe/{MODELS[name][0]}", source_sha256=sha256(src),
        license="Apache-2.0 (Google LLC, MediaPipe); see NOTICE and LICENSE", command=COMMAND,
        onnx_sha256=sha256(onnx_path), opset=opset,
        layout="NHWC float32 in and out, as the tflite model",
        storage=f"{n16} weight tensors stored as fp16 (exact: the tflite weights are fp16) + Cast to fp32",
        inputs={"input": ["batch", *size]},
        outputs={k: ["batch", *(spec["shapes"][str(spec["outputs"][k])][1:] if k in spec["outputs"]
                                 else list(ref[k].shape[1:]))] for k in names},
        input_range=[-1.0, 1.0] if name == "pose_detection" else [0.0, 1.0],
        metrics=dict(max_diff_vs_tflite_rel_to_range=dict(torch={k: err_torch[k] for k in names},
                                                          onnxruntime=err_onnx),
                     check="random input, batch 2, tflite reference run per image without XNNPACK"),
        created=time.strftime("%Y-%m-%d", time.gmtime()),
    )
    (out / f"{variant}.json").write_text(json.dumps(meta, indent=2) + "\n")
    worst = max(err_onnx.values())
    log.info("%s: max |onnx - tflite| / range %.2e, %.1f MB", variant, worst, onnx_path.stat().st_size / 2**20)
    if worst > 1e-3:
        raise RuntimeError(f"{variant}: ONNX differs from tflite by {worst}")
    return meta


def main(argv: list[str] | None = None) -> int:
    import mediapipe

    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets" / "blazepose"))
    p.add_argument("--weights-out", default="build/blazepose", help="torch weights (safetensors, spec in metadata)")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = Path(mediapipe.__file__).parent
    out = Path(args.out)
    for name, (rel, _) in MODELS.items():
        convert(name, root / rel, out, Path(args.weights_out), args.opset)
    license_src = next(iter(sorted(root.parent.glob("mediapipe*.dist-info/LICENSE*"))), None)
    if license_src is None:
        raise FileNotFoundError("mediapipe's LICENSE not found in its dist-info")
    (out / "LICENSE").write_text(license_src.read_text())
    (out / "NOTICE").write_text(NOTICE.format(command=COMMAND))
    return 0


if __name__ == "__main__":
    sys.exit(main())
