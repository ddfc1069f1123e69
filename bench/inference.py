"""Inference speed of `WordMapper.predict` (PyTorch fp32 and bf16, ONNX Runtime fp32 and int8),
`pipeline("word-mapping")`, a sentence-transformers-style baseline (mean-pooled embedding, cosine to the label-name
embeddings), the real `sentence-transformers` `encode` on the same encoder (a peer: embeddings only, no words), and
the bare forward on pre-tokenised input (the framework's limit), side by side in one run; plus PyTorch dynamic int8
quantisation, and each variant's top-1 agreement with PyTorch fp32 `predict` on the WordNet test split.

    python bench/inference.py --model bertmap-attributes      # a trained model folder (python train.py)
    python bench/inference.py --smoke --model PATH            # a few iterations, for the test suite

Prints a table and one JSON line. Throughput is phrases/s at batch 64; latency is p50/p95 ms at batch 1;
tokenisation is included everywhere except in the bare forward. Model FLOP utilisation (MFU) at batch 64: the
forward FLOPs of the timed batches (bench/flops.py, from the model's shapes and each batch's padded length) per
second, over the best matrix-multiply rate measured in the same run (fp32, or bf16 for the bf16 rows), at its start
and its end. The bare forward is also timed at both ends, its best kept.
"""

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
from flops import matmul_peak_flops, word_mapper_flops
from transformers import pipeline

from hf_bertmap import WordMapper
from hf_bertmap.arguments import DataArguments
from hf_bertmap.data import load_splits
from hf_bertmap.modeling_bertmap import masked_mean


def phrases_per_s(fn, phrases: list[str], batch_size: int, repeats: int) -> float:
    batches = [phrases[i : i + batch_size] for i in range(0, len(phrases), batch_size)]
    fn(batches[0])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        for batch in batches:
            fn(batch)
    return repeats * len(phrases) / (time.perf_counter() - start)


def latency_ms(fn, phrases: list[str]) -> tuple[float, float]:
    fn([phrases[0]])
    times = []
    for phrase in phrases:
        start = time.perf_counter()
        fn([phrase])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def onnx_int8_variants(folder: str, fp32_file: str, calibration: list[str], tokenizer, max_length: int) -> dict:
    """Write the int8 graphs tried into `folder` (none is offered: each agreed with fp32 on fewer than 99% of
    top-1 words); returns row name -> file name. Dynamic: MatMul weights int8 per channel, activations int8 per
    tensor at run time. Static: activations' ranges calibrated (min-max) on `calibration` phrases, QDQ format.
    Blockwise: MatMulNBits, 8-bit weights in blocks of 16 with int8 arithmetic on per-block quantised activations.
    Weight-only: the same weights, float32 arithmetic."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    float_default = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # the fused graph leaves some types unknown
    quantize_dynamic(fp32_file, f"{folder}/int8_dynamic.onnx", weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], extra_options=float_default)
    files = {"onnx_int8_dynamic": "int8_dynamic.onnx"}

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([tokenizer(calibration[i : i + 32], padding=True, truncation=True,
                                           max_length=max_length, return_tensors="np")
                                 for i in range(0, len(calibration), 32)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch[name].astype("int64")
                                               for name in ("input_ids", "attention_mask")}

    quantize_static(fp32_file, f"{folder}/int8_static.onnx", Batches(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul"], calibrate_method=CalibrationMethod.MinMax,
                    extra_options=float_default)
    files["onnx_int8_static"] = "int8_static.onnx"
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError:  # it needs onnx-ir
        print("onnx-ir is not installed (pip install \".[bench]\"): the blockwise int8 rows are skipped")
        return files
    for name, accuracy_level in (("onnx_int8_blockwise", 4), ("onnx_int8_weight_only", None)):
        quantizer = MatMulNBitsQuantizer(onnx.load(fp32_file), bits=8, block_size=16, is_symmetric=True,
                                         accuracy_level=accuracy_level)
        quantizer.process()
        quantizer.model.save_model_to_file(f"{folder}/{name}.onnx", use_external_data_format=False)
        files[name] = f"{name}.onnx"
    return files


def int8_copy(mapper: WordMapper) -> WordMapper:
    quantized = torch.ao.quantization.quantize_dynamic(mapper.model, {torch.nn.Linear}, dtype=torch.qint8)
    return WordMapper(quantized, mapper.tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bertmap-attributes", help="a trained bertmap model folder")
    parser.add_argument("--phrases", type=int, default=1024, help="test-split phrases timed at batch 64")
    parser.add_argument("--latency_phrases", type=int, default=200, help="phrases timed one by one")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a few iterations, for the test suite")
    args = parser.parse_args()
    if args.smoke:
        args.phrases, args.latency_phrases, args.repeats = 64, 8, 1

    peak_args = {"sizes": (128,), "seconds": 0.05} if args.smoke else {}
    peaks = {name: matmul_peak_flops(dtype, **peak_args) for name, dtype in (("fp32", torch.float32),
                                                                             ("bf16", torch.bfloat16))}
    mapper = WordMapper.from_pretrained(args.model)
    bf16 = WordMapper.from_pretrained(args.model, dtype=torch.bfloat16)  # decoding stays float32
    model, tokenizer = mapper.model, mapper.tokenizer
    test = load_splits(DataArguments())["test"]
    phrases = list(test["phrase"])
    timed = (phrases * (1 + args.phrases // len(phrases)))[: args.phrases]
    batch_size, max_length = 64, mapper.decoding.config.max_length

    word_pipeline = pipeline("word-mapping", model=model, tokenizer=tokenizer, device=-1)
    with torch.inference_mode():  # the baseline's label embeddings: the encoder on each label's name
        names = tokenizer(mapper.words, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        label_embeddings = torch.nn.functional.normalize(
            masked_mean(model.encoder(**names).last_hidden_state, names["attention_mask"]), dim=-1)

    @torch.inference_mode()
    def nearest_label(batch):
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        embeddings = masked_mean(model.encoder(**inputs).last_hidden_state, inputs["attention_mask"])
        return (torch.nn.functional.normalize(embeddings, dim=-1) @ label_embeddings.T).argmax(-1)

    work = tempfile.TemporaryDirectory()
    fp32_file = mapper.export_onnx(work.name)
    train_phrases = list(load_splits(DataArguments())["train"]["phrase"])
    calibration = train_phrases[:: max(1, len(train_phrases) // (16 if args.smoke else 512))]
    onnx_mappers = {"onnx_fp32": WordMapper.from_pretrained(work.name, backend="onnx")}
    for name, file in onnx_int8_variants(work.name, fp32_file, calibration, tokenizer, max_length).items():
        onnx_mappers[name] = WordMapper.from_pretrained(work.name, backend="onnx", onnx_file=file)
    systems = {
        "predict": lambda batch: mapper.predict(batch, top_k=1, batch_size=batch_size),
        "predict_bf16": lambda batch: bf16.predict(batch, top_k=1, batch_size=batch_size),
        **{f"{name}_predict": (lambda batch, m=onnx_mapper: m.predict(batch, top_k=1, batch_size=batch_size))
           for name, onnx_mapper in onnx_mappers.items()},
        "pipeline": lambda batch: word_pipeline(batch, top_k=1, batch_size=len(batch)),
        "embedding_nearest_label": nearest_label,
    }
    try:  # the peer: sentence-transformers' own encode on the same encoder weights (saved as a plain encoder)
        from sentence_transformers import SentenceTransformer, models

        model.encoder.save_pretrained(f"{work.name}/encoder")
        tokenizer.save_pretrained(f"{work.name}/encoder")
        transformer = models.Transformer(f"{work.name}/encoder", max_seq_length=max_length)
        pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
        sentence_model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
        systems["sentence_transformers_encode"] = lambda batch: sentence_model.encode(batch, batch_size=batch_size)
    except ImportError:
        print("sentence-transformers is not installed (pip install \".[bench]\"): its row is skipped")
    results = {"model": args.model, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "machine": platform.machine(), "batch_size": batch_size}

    # The framework's limit: the model's forward alone, on batches tokenised before timing.
    def tokenised(batch):
        return tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    batches = [tokenised(timed[i : i + batch_size]) for i in range(0, len(timed), batch_size)]
    flops_per_phrase = sum(word_mapper_flops(model.config, *inputs["input_ids"].shape) for inputs in batches) \
        / len(timed)
    singles = [tokenised([p]) for p in timed[: args.latency_phrases]]

    @torch.inference_mode()
    def bare_forward() -> tuple[float, list[float]]:
        model(**batches[0])
        start = time.perf_counter()
        for _ in range(args.repeats):
            for inputs in batches:
                model(**inputs)
        throughput = args.repeats * len(timed) / (time.perf_counter() - start)
        times = []
        for inputs in singles:
            t0 = time.perf_counter()
            model(**inputs)
            times.append((time.perf_counter() - t0) * 1000)
        return throughput, sorted(times)

    throughput, times = bare_forward()
    results["bare_forward"] = {"phrases_per_s_batch64": round(throughput, 1),
                               "p50_ms_batch1": round(statistics.median(times), 2),
                               "p95_ms_batch1": round(times[int(0.95 * (len(times) - 1))], 2)}
    for name, fn in systems.items():
        throughput = phrases_per_s(fn, timed, batch_size, args.repeats)
        p50, p95 = latency_ms(fn, timed[: args.latency_phrases])
        results[name] = {"phrases_per_s_batch64": round(throughput, 1), "p50_ms_batch1": round(p50, 2),
                         "p95_ms_batch1": round(p95, 2)}
    # The limits are the best seen: the bare forward and the matmul peak are measured again after the systems.
    throughput, times = bare_forward()
    row = results["bare_forward"]
    row["phrases_per_s_batch64"] = max(row["phrases_per_s_batch64"], round(throughput, 1))
    row["p50_ms_batch1"] = min(row["p50_ms_batch1"], round(statistics.median(times), 2))
    row["p95_ms_batch1"] = min(row["p95_ms_batch1"], round(times[int(0.95 * (len(times) - 1))], 2))
    peaks = {name: max(peak, matmul_peak_flops(dtype, **peak_args))
             for (name, peak), dtype in zip(peaks.items(), (torch.float32, torch.bfloat16))}
    for name, row in results.items():
        if isinstance(row, dict) and name in ("bare_forward", "predict", "predict_bf16"):
            row["mfu_batch64"] = round(row["phrases_per_s_batch64"] * flops_per_phrase
                                       / peaks["bf16" if name.endswith("bf16") else "fp32"], 4)
    results["model_gflops_per_phrase"] = round(flops_per_phrase / 1e9, 4)
    results["matmul_peak_gflops"] = {name: round(peak / 1e9, 1) for name, peak in peaks.items()}
    results["phrases_per_s_batch64"] = results["predict"]["phrases_per_s_batch64"]
    results["p50_ms_batch1"] = results["predict"]["p50_ms_batch1"]
    results["predict_over_forward_batch64"] = round(
        results["predict"]["phrases_per_s_batch64"] / results["bare_forward"]["phrases_per_s_batch64"], 3)
    results["predict_p50_over_forward_p50"] = round(
        results["predict"]["p50_ms_batch1"] / results["bare_forward"]["p50_ms_batch1"], 3)

    quantized = int8_copy(mapper)
    fp32_speed = results["predict"]["phrases_per_s_batch64"]
    int8_speed = phrases_per_s(lambda b: quantized.predict(b, batch_size=batch_size), timed, batch_size, args.repeats)
    agreement_phrases = phrases[: 64] if args.smoke else phrases
    fp32_top1 = mapper.predict_proba(agreement_phrases).argmax(-1)
    results["int8_speedup_batch64"] = round(int8_speed / fp32_speed, 3)
    results["int8_top1_agreement"] = round(float((fp32_top1 == quantized.predict_proba(agreement_phrases).argmax(-1))
                                                 .float().mean()), 4)
    results["int8_agreement_phrases"] = len(agreement_phrases)
    results["bf16_speedup_batch64"] = round(results["predict_bf16"]["phrases_per_s_batch64"] / fp32_speed, 3)
    results["bf16_top1_agreement"] = round(float((fp32_top1 == bf16.predict_proba(agreement_phrases).argmax(-1))
                                                 .float().mean()), 4)
    for name, variant in onnx_mappers.items():
        row = results[f"{name}_predict"]
        row["top1_agreement"] = round(float((fp32_top1 == variant.predict_proba(agreement_phrases).argmax(-1))
                                            .float().mean()), 4)
        row["speedup_batch64"] = round(row["phrases_per_s_batch64"] / fp32_speed, 3)
        row["p50_speedup_batch1"] = round(results["predict"]["p50_ms_batch1"] / row["p50_ms_batch1"], 3)
    work.cleanup()

    print(f"{'system':<26}{'phrases/s @64':>14}{'p50 ms @1':>11}{'p95 ms @1':>11}")
    for name in ("bare_forward", *systems):
        row = results[name]
        print(f"{name:<26}{row['phrases_per_s_batch64']:>14.1f}{row['p50_ms_batch1']:>11.2f}{row['p95_ms_batch1']:>11.2f}")
    print(f"PyTorch int8 dynamic quantisation: {results['int8_speedup_batch64']}x at batch 64, "
          f"top-1 agreement {results['int8_top1_agreement']:.2%} on {len(agreement_phrases)} test phrases")
    print(f"bfloat16 weights: {results['bf16_speedup_batch64']}x at batch 64, top-1 agreement "
          f"{results['bf16_top1_agreement']:.2%} with float32")
    print(f"MFU at batch 64 ({results['model_gflops_per_phrase']} GFLOP per phrase; matmul peak "
          f"{results['matmul_peak_gflops']} GFLOP/s): " + ", ".join(
              f"{name} {results[name]['mfu_batch64']:.3f}" for name in ("bare_forward", "predict", "predict_bf16")))
    for name in onnx_mappers:
        row = results[f"{name}_predict"]
        print(f"{name}: {row['speedup_batch64']}x PyTorch predict at batch 64, p50 {row['p50_speedup_batch1']}x "
              f"faster at batch 1, top-1 agreement {row['top1_agreement']:.2%}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
