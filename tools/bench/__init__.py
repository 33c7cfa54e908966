"""The stages of tools/benchmark.py, one module each (data, encode, forward, decode, evaluate, memory,
decoders), their generated inputs and loop references, the official-code runner and the printed tables."""
