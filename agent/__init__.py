"""The LangGraph agent: graph, state, prompts, configuration and LLM backends."""
