"""Outbound ports to inference engines: one `EngineClient` per engine (vLLM, SGLang, the AIBrix runtime).

Ports-and-adapters "adapters": inside this project the word "adapter" otherwise always means the LoRA adapter.
The clients arrive with the issue "Engine clients, a faithful simulated vLLM, and a real vLLM on the CPU".
"""
