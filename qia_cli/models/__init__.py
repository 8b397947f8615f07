"""Models from the Hugging Face Hub: the catalog, `pull`, and what the cache holds.

- catalog.py: a few curated planner GGUFs, and which of them fits this machine;
- spec.py: what a name means (a catalog name, ORG/REPO/FILE.gguf, ORG/REPO), resolved offline;
- cache.py: the huggingface_hub cache: pulled GGUFs and pipelines, completeness, removal;
- pull.py: downloads through huggingface_hub (only the files a pipeline needs) with one-line errors.

Nothing here imports torch, diffusers or llama_cpp.
"""
