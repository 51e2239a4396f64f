#!/usr/bin/env python3
"""External embedding generator: run it where the GPU is (a GPU server, Colab, or a laptop on CPU).

    python external_embedding_generator.py --input-dir embedding_data --output-dir embeddings_output \
        --batch-size 16 --model Qwen/Qwen3-Embedding-0.6B

Same options as `embedding-console generate` (see --help); all the work is in the `console` package.
"""
import sys

from console.cli import main

if __name__ == "__main__":
    sys.exit(main())
