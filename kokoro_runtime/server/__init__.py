"""The serve extra: an OpenAI-compatible HTTP server over the runtime (Starlette + uvicorn)."""
