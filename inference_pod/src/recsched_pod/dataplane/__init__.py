"""The pod's data plane: the server app (`server`: load, warm, ready, infer routes), the worker pool
that splits queries at batch size B (`engine`), the traced graph it runs (`serving_graph`) and the
emulated GPU device (`gpu_emulation`)."""
