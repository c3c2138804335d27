"""`multibackend evolve`: NSGA-II search over dense MNIST networks (`genome`, `study`, `worker`, `report`)."""
