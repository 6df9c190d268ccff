"""Test models in DeepFaune 1.5's interface, built at test time with onnx.helper (no torch), under
the file names of the built-in ``deepfaune-v15`` manifest: with ``DEEPFAUNE_RS_MODELS`` pointing
at their folder, ``Pipeline(..., "deepfaune-v15")`` runs them with the built-in manifest itself
(its classes, labels, temperatures, input size and bird head are what the tests exercise).

- classifier: ``input`` [b, 3, 224, 224] -> AveragePool(4) -> flatten (3 x 56 x 56) -> a seeded
  random projection to the 1024-d ``embedding`` -> a second one to 40 ``logits``. Every 4x4 block
  of the crop moves the logits, so a wrong crop, resampler, size or normalisation shows (a
  random-weight ViT hardly depends on its input). The ``bird`` column gets a bias so that birds
  win often enough to exercise the bird stage.
- bird head: ``embedding`` [b, 1024] -> ``logits`` [b, 8], a seeded linear layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO

SIZE = 224
POOL = 4
EMBEDDING = 1024
CLASSES = 40
GROUPS = 8
BUILTIN = REPO / "models" / "deepfaune-v15.toml"
CLASSIFIER_FILE = "deepfaune-vit_large_patch16_dinov3.lvd1689m.onnx"
BIRD_HEAD_FILE = "deepfaune-vit_large_patch16_dinov3.lvd1689m-bird_head.onnx"


def _save(nodes, name, inputs, outputs, inits, path: Path) -> None:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _pixel_classifier(
    rng, path: Path, size: int, pool: int, classes: int, bias: dict[int, float]
) -> None:
    """``input`` [b, 3, size, size] -> AveragePool(pool) -> flatten -> ``embedding`` [b, 1024]
    -> ``logits`` [b, classes], seeded random weights; ``bias`` raises some logits."""
    d = 3 * (size // pool) ** 2
    w1 = (rng.standard_normal((d, EMBEDDING)) / np.sqrt(d) * 3).astype(np.float32)
    w2 = (rng.standard_normal((EMBEDDING, classes)) / np.sqrt(EMBEDDING) * 1.5).astype(np.float32)
    b2 = (rng.standard_normal(classes) * 0.5).astype(np.float32)
    for i, v in bias.items():
        b2[i] += v
    f = TensorProto.FLOAT
    _save(
        [
            helper.make_node(
                "AveragePool",
                ["input"],
                ["pooled"],
                kernel_shape=[pool, pool],
                strides=[pool, pool],
            ),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w1"], ["embedding"]),
            helper.make_node("MatMul", ["embedding", "w2"], ["mm"]),
            helper.make_node("Add", ["mm", "b2"], ["logits"]),
        ],
        "pixel_classifier",
        [helper.make_tensor_value_info("input", f, ["batch", 3, size, size])],
        [
            helper.make_tensor_value_info("logits", f, ["batch", classes]),
            helper.make_tensor_value_info("embedding", f, ["batch", EMBEDDING]),
        ],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (b2, "b2"))],
        path,
    )


def build(folder: Path, seed: int = 15, bird_bias: float = 6.0) -> Path:
    """Writes the classifier and the bird head into ``folder`` (returned). ``bird_bias`` is added
    to the logit of ``bird`` (index 29 in 1.5, from the reference's own tables)."""
    from reference.deepfaune_15_labels import BIRD_INDEX

    rng = np.random.default_rng(seed)
    _pixel_classifier(rng, folder / CLASSIFIER_FILE, SIZE, POOL, CLASSES, {BIRD_INDEX: bird_bias})
    wb = (rng.standard_normal((EMBEDDING, GROUPS)) / np.sqrt(EMBEDDING) * 0.8).astype(np.float32)
    bb = (rng.standard_normal(GROUPS) * 0.5).astype(np.float32)
    f = TensorProto.FLOAT
    _save(
        [
            helper.make_node("MatMul", ["embedding", "wb"], ["mm"]),
            helper.make_node("Add", ["mm", "bb"], ["logits"]),
        ],
        "bird_head_v15",
        [helper.make_tensor_value_info("embedding", f, ["batch", EMBEDDING])],
        [helper.make_tensor_value_info("logits", f, ["batch", GROUPS])],
        [numpy_helper.from_array(wb, "wb"), numpy_helper.from_array(bb, "bb")],
        folder / BIRD_HEAD_FILE,
    )
    text = BUILTIN.read_text(encoding="utf-8")
    assert f'file = "{CLASSIFIER_FILE}"' in text and f'file = "{BIRD_HEAD_FILE}"' in text
    return folder


#: The file of the built-in ``deepfaune-v14`` manifest.
V14_FILE = "deepfaune-vit_large_patch14_dinov2.lvd142m.v4.onnx"


def build_v14(folder: Path, seed: int = 14) -> Path:
    """A pixel classifier in DeepFaune 1.4's interface (182 px, 38 classes, 1024-d embedding)
    under the built-in ``deepfaune-v14`` file name, beside the 1.5 ones (for tests that switch
    versions)."""
    _pixel_classifier(np.random.default_rng(seed), folder / V14_FILE, 182, 7, 38, {})
    assert f'file = "{V14_FILE}"' in (REPO / "models" / "deepfaune-v14.toml").read_text()
    return folder
