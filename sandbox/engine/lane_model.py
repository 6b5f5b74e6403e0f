"""Build the real-engine lane's model and adapters: a tiny random Llama, a locally trained tokenizer, and PEFT
LoRA adapters. No downloads.

This file runs inside the lane's own venv (torch, transformers, peft), never in the project's:
`<lane venv>/bin/python lane_model.py OUT_DIR`. `modeladapter.sandbox.engine.vllm_lane` calls it; the recipe is
`vllm-cpu-engine.md` §2. It writes:

* `OUT/model`: LlamaForCausalLM, hidden 128, 2 layers, 4 heads, fp32 safetensors, with `tokenizer.json`;
* `OUT/lora-a`, `OUT/lora-b`, `OUT/lora-c`: rank 8, alpha 16, q_proj + v_proj, random non-zero B, so that
  each changes the model's output differently;
* `OUT/lora-r16`: rank 16, above the lane servers' `--max-lora-rank 8` (vLLM answers 500);
* `OUT/lora-bias`: rank 8 with `"bias": "all"` in its config (vLLM answers 500 "Adapter bias is not supported.").
"""

# mypy: ignore-errors
# (torch, transformers and peft are not installed in the project's environment, only in the lane's.)

from __future__ import annotations

import json
import sys
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Kubernetes controllers reconcile desired state with actual state.",
    "LoRA adapters are loaded and unloaded at runtime over HTTP.",
    "vLLM serves an OpenAI compatible API for completions and chat.",
    "Hello world! This is a tiny random model used only for testing.",
] * 20

ADAPTERS = {
    # name: (seed, rank, bias)
    "lora-a": (101, 8, "none"),
    "lora-b": (102, 8, "none"),
    "lora-c": (103, 8, "none"),
    "lora-r16": (104, 16, "none"),
    "lora-bias": (105, 8, "all"),
}


def build(out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    model_dir = out / "model"

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    hf_tokenizer.model_max_length = 256

    config = LlamaConfig(
        vocab_size=len(hf_tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=hf_tokenizer.bos_token_id,
        eos_token_id=hf_tokenizer.eos_token_id,
        pad_token_id=hf_tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(model_dir, safe_serialization=True)
    hf_tokenizer.save_pretrained(model_dir)

    for name, (seed, rank, bias) in ADAPTERS.items():
        torch.manual_seed(seed)
        base = LlamaForCausalLM.from_pretrained(model_dir)
        lora = LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=["q_proj", "v_proj"],
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
            init_lora_weights=False,
        )
        get_peft_model(base, lora).save_pretrained(out / name)
        if bias != "none":
            # Llama has no bias terms to train, so PEFT would save nothing different; the config flag alone is
            # what vLLM checks.
            config_path = out / name / "adapter_config.json"
            adapter_config = json.loads(config_path.read_text())
            adapter_config["bias"] = bias
            config_path.write_text(json.dumps(adapter_config, indent=2))
        print(f"built {name} (rank {rank}, bias {bias})", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lane_model.py OUT_DIR")
    build(Path(sys.argv[1]))
