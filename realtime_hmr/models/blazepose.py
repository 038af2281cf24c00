"""BlazePose detector and landmark networks as torch modules, built op by op from a converted tflite graph.

The spec (a JSON-able dict, see ``realtime_hmr.train.convert_blazepose.graph_spec``) lists the tflite operators in
execution order with tensor ids, options and static shapes; the weights are dense fp32 tensors keyed ``t<id>``.
Activations run in NCHW inside; the module's input and outputs keep the tflite layout (NHWC images, same output
shapes), with a free batch axis. A spec may also name ``taps``: extra outputs made of inner tensors, each a list of
tensor ids whose feature maps become one sequence of tokens (B, sum of h*w, C), row-major (the landmark net's image
features for the mesh decoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACT = {None: lambda x: x, "relu": F.relu, "relu6": lambda x: x.clamp(0.0, 6.0),
       "relu_n1_1": lambda x: x.clamp(-1.0, 1.0)}
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def same_pad(size: int, out: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D with tflite's padding (asymmetric SAME padded explicitly) and fused activation."""

    def __init__(self, op: dict, shapes: dict, w: Tensor, b: Tensor | None):
        super().__init__()
        a, depthwise = op["attrs"], op["type"] == "DEPTHWISE_CONV_2D"
        (_, h, wd, cin), (_, oh, ow, _) = shapes[str(op["inputs"][0])], shapes[str(op["outputs"][0])]
        w = w.permute(3, 0, 1, 2) if depthwise else w.permute(0, 3, 1, 2)  # -> (out, in/groups, kh, kw)
        k, s, d = w.shape[2:], a["stride"], a["dilation"]
        pads = (0, 0, 0, 0)
        if a["padding"] == "SAME":
            ph, pw = same_pad(h, oh, k[0], s[0], d[0]), same_pad(wd, ow, k[1], s[1], d[1])
            pads = (*pw, *ph)
        self.pads = pads if pads[0] != pads[1] or pads[2] != pads[3] else None
        self.conv = nn.Conv2d(w.shape[1] * (cin if depthwise else 1), w.shape[0], tuple(k), tuple(s),
                              padding=0 if self.pads else (pads[2], pads[0]), dilation=tuple(d),
                              groups=cin if depthwise else 1, bias=b is not None)
        self.conv.weight.data.copy_(w)
        if b is not None:
            self.conv.bias.data.copy_(b)
        self.act = a["act"]

    def forward(self, x: Tensor) -> Tensor:
        return ACT[self.act](self.conv(F.pad(x, self.pads) if self.pads else x))


class Op(nn.Module):
    """Every other builtin op the two BlazePose graphs use (no weights)."""

    def __init__(self, op: dict, shapes: dict):
        super().__init__()
        self.kind, self.a = op["type"], dict(op["attrs"])
        a = self.a
        self.in_shape = shapes[str(op["inputs"][0])]
        self.out_shape = shapes[str(op["outputs"][0])]
        if self.kind == "PAD":
            p = a["paddings"]  # NHWC [[before, after], ...]
            if p[0] != [0, 0]:
                raise ValueError("PAD on the batch axis is not supported")
            self.a["pads"] = (*p[2], *p[1], *p[3]) if len(p) == 4 else tuple(v for ba in p[:0:-1] for v in ba)
        if self.kind == "CONCATENATION":
            rank = len(self.out_shape)
            axis = self.a["axis"] % rank
            self.a["axis"] = NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis
        if self.kind == "RESIZE_BILINEAR" and not self.a["half_pixel_centers"] and not self.a["align_corners"]:
            raise ValueError("legacy RESIZE_BILINEAR (no half pixel centers, no align corners) is not supported")

    def forward(self, *xs: Tensor) -> Tensor:
        k, a, x = self.kind, self.a, xs[0]
        if k == "ADD":
            return ACT[a["act"]](x + xs[1])
        if k == "PAD":
            return F.pad(x, a["pads"])
        if k == "CONCATENATION":
            return ACT[a["act"]](torch.cat(xs, dim=a["axis"]))
        if k == "RESIZE_BILINEAR":
            return F.interpolate(x, size=tuple(self.out_shape[1:3]), mode="bilinear", align_corners=a["align_corners"])
        if k == "DEPTH_TO_SPACE":  # tflite/TF order is DCR: channel = (i * block + j) * C + c
            b, (n, c, h, w) = a["block"], x.shape
            x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
            return x.reshape(n, c // (b * b), h * b, w * b)
        if k == "MAX_POOL_2D":
            kh, kw = a["kernel"]
            if a["padding"] == "SAME":
                ph = same_pad(self.in_shape[1], self.out_shape[1], kh, a["stride"][0], 1)
                pw = same_pad(self.in_shape[2], self.out_shape[2], kw, a["stride"][1], 1)
                x = F.pad(x, (*pw, *ph), value=float("-inf"))
            return ACT[a["act"]](F.max_pool2d(x, (kh, kw), tuple(a["stride"])))
        if k == "LOGISTIC":
            return torch.sigmoid(x)
        if k == "RESHAPE":
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            y = x.reshape(-1, *self.out_shape[1:])
            return y.permute(0, 3, 1, 2) if y.dim() == 4 else y
        raise NotImplementedError(k)


class TfliteNet(nn.Module):
    """A converted tflite graph. ``forward(x NHWC) -> {output name: tensor in tflite layout}``."""

    def __init__(self, spec: dict, weights: dict[str, Tensor]):
        super().__init__()
        self.spec = spec
        shapes, layers = spec["shapes"], []
        for op in spec["ops"]:
            if op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                ids = op["inputs"]
                bias = weights[f"t{ids[2]}"] if len(ids) > 2 and ids[2] >= 0 else None
                layers.append(Conv(op, shapes, weights[f"t{ids[1]}"], bias))
            else:
                layers.append(Op(op, shapes))
        self.layers = nn.ModuleList(layers)
        consts = set(spec["consts"])
        self.wiring = [([t for t in op["inputs"][: 1 if op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "RESHAPE")
                                                else None] if t not in consts], op["outputs"][0]) for op in spec["ops"]]
        for op, (ins, _) in zip(spec["ops"], self.wiring, strict=True):
            if op["type"] in ("ADD", "CONCATENATION") and len(ins) != len(op["inputs"]):
                raise ValueError(f"{op['type']} with a constant operand is not supported")

    @classmethod
    def from_safetensors(cls, path: str) -> TfliteNet:
        """Rebuild from a converter-written safetensors file (the spec travels in its metadata)."""
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(path, "pt") as f:
            spec = json.loads(f.metadata()["spec"])
        state = load_file(path)
        net = cls(spec, _spec_weights(spec, state))
        net.load_state_dict(state, strict=True)
        return net

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        env = {self.spec["input"]: x.permute(0, 3, 1, 2)}
        for layer, (ins, out) in zip(self.layers, self.wiring, strict=True):
            env[out] = layer(*[env[t] for t in ins])
        outs = {}
        for name, t in self.spec["outputs"].items():
            y = env[t]
            outs[name] = y.permute(0, 2, 3, 1) if y.dim() == 4 else y
        for name, ids in self.spec.get("taps", {}).items():
            outs[name] = torch.cat([env[t].flatten(2).transpose(1, 2) for t in ids], 1)
        return outs


def _spec_weights(spec: dict, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Placeholder constants with the right shapes, so the module can be built before its state dict is loaded."""
    weights = {}
    for op, key in zip(spec["ops"], range(len(spec["ops"])), strict=True):
        ids = op["inputs"]
        if op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = state[f"layers.{key}.conv.weight"]
            weights[f"t{ids[1]}"] = w.permute(0, 2, 3, 1) if op["type"] == "CONV_2D" else w.permute(1, 2, 3, 0)
            if len(ids) > 2 and ids[2] >= 0:
                weights[f"t{ids[2]}"] = state[f"layers.{key}.conv.bias"]
    return weights
