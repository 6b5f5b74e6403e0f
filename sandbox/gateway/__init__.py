"""The sandbox's gateway: a real Envoy that routes OpenAI requests by the body's `model` to what the operator
published (`gateway`), its configuration (`envoy_config`), and the routing table read from the API (`routing`)."""
