"""Runs llm-analysis inside its own venv (its pins conflict with the project's transformers):
reads one JSON request on stdin, prints one JSON answer. Called by bench_calculators.py.

Request: {"model": name of a built-in config, or the fields of llm_analysis.config.ModelConfig,
          "gpu": name, "dtype": name, "train": train() keyword arguments or null,
          "infer": infer() keyword arguments or null, "batch_size": B, "seq_len": T}
Answer: {"train": train()'s summary, "infer": infer()'s summary, "forward_flops": fwd FLOPs of B x T,
         "train_refused": train()'s assertion on the GPU named, or null}
train() asserts when the batch does not fit the GPU; the summary then comes from a copy of the GPU's
config with unbounded memory (the per-quantity bytes do not depend on it) and train_refused says why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys


def main() -> None:
    from llm_analysis.analysis import LLMAnalysis, infer, train
    from llm_analysis.config import (ModelConfig, ParallelismConfig, get_dtype_config_by_name,
                                     get_gpu_config_by_name, get_model_config_by_name, gpu_configs, model_configs)

    request = json.load(sys.stdin)
    model = request["model"]
    if isinstance(model, dict):  # register it under its name: train()/infer() take a name
        config = ModelConfig(**model)
        model_configs[config.name] = config
        name = config.name
    else:
        name = model
    logging.disable(logging.WARNING)
    out = {}
    common = {"model_name": name, "gpu_name": request["gpu"], "dtype_name": request["dtype"], "log_level": "ERROR"}
    out["train_refused"] = None
    if request.get("train") is not None:
        try:
            out["train"] = train(**common, **request["train"])
        except AssertionError as e:
            out["train_refused"] = str(e)
            unbounded = dataclasses.replace(gpu_configs[request["gpu"]], name="unbounded", mem_per_GPU_in_GB=10**6)
            gpu_configs["unbounded"] = unbounded
            out["train"] = train(**{**common, "gpu_name": "unbounded"}, **request["train"])
    if request.get("infer") is not None:
        out["infer"] = infer(**common, **request["infer"])
    analysis = LLMAnalysis(get_model_config_by_name(name), get_gpu_config_by_name(request["gpu"]),
                           get_dtype_config_by_name(request["dtype"]), ParallelismConfig())
    out["forward_flops"] = analysis.get_num_flops_fwd_total(request["batch_size"], request["seq_len"])
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
