"""Outbound ports to inference engines: one `EngineClient` per engine (vLLM, SGLang, the AIBrix runtime).

Ports-and-adapters "adapters": inside this project the word "adapter" otherwise always means the LoRA adapter.

    async with EngineConnections() as engines:            # one per operator: the shared httpx client
        target = select_engine(pod_ip=..., pod_labels=..., container_names=..., adapter_labels=...)
        client = engines.client(target, api_key=key)       # cheap, per pod and key
        await client.load(LoadRequest(name="qwen-lora", artifact_url="huggingface://org/repo"))

Modules: `outcomes` (results and the error taxonomy), `answers` (reading engine bodies), `artifacts` (URL
translation), `selection` (which engine API a pod speaks), `connections` (the HTTP edge), `base` (the
`EngineClient` port), and one module per engine: `vllm`, `sglang`, `runtime`. See docs/engines.md.
"""
