"""`multibackend-bench` (`python -m multibackend.bench`): Keras `fit` and the fast path against each framework's native loop.

Nothing outside this package imports it: the product never depends on the benchmark.
`harness` runs and reports, `worker` trains in a fresh process, `native` holds the baselines.
"""
