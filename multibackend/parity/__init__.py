"""`multibackend parity`: the same network computed by every backend, compared within declared tolerances.

`checks` compares and decides (NumPy only); `worker` is one backend's side, run in its own process.
"""
