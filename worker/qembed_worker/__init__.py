"""qembed worker: writes the model bundles that the qembed service serves.

The worker never downloads weights at run time: Hugging Face hub access is switched off before
any library that could reach it is imported.
"""

import os

# Set before transformers / huggingface_hub are imported anywhere in the package, so that a
# missing local file fails loudly instead of turning into a network call.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
