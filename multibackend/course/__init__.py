"""The course's material as data, before any framework: networks, gates, MNIST files, offline `load_data()`."""
