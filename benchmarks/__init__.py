"""Benchmarks of the Coalesce load against the bundled simulator.

One command (from the project root)::

    python -m benchmarks.run [--size small|medium|harness|large] [--latency-ms 20] [--output benchmarks/results/<name>.json]

`run` starts the simulator in its own process, runs every scenario in a fresh subprocess
(`python -m benchmarks.scenario <name> ...`) and measures it from outside: wall time, peak RSS
(`os.wait4` rusage), and the HTTP requests the simulator saw. See docs/benchmark.md for the scenarios
(under Dagster too) and the regression line against `benchmarks/recorded/`.
"""
