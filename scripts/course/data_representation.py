# %% [markdown]
# # Data representation: tensors of rank 0 to 4, and reshape
#
# A tensor is a container of numbers with one dtype: a multi-dimensional array.

# %%
import numpy as np
from keras import ops

scalar = ops.convert_to_tensor(7.0)
vector = ops.convert_to_tensor([1.0, 2.0, 3.0, 4.0])
matrix = ops.convert_to_tensor([[1, 2, 3], [4, 5, 6]])
cube = ops.zeros((4, 3, 2))
for name, tensor in [("scalar", scalar), ("vector", vector), ("matrix", matrix), ("3D tensor", cube)]:
    print(f"{name:>9}: rank {len(ops.shape(tensor))}, shape {tuple(ops.shape(tensor))}")
assert tuple(ops.shape(vector)) == (4,) and tuple(ops.shape(matrix)) == (2, 3)

# %% [markdown]
# ## A 4D tensor of gray images: (samples, height, width, channels)
# Each cell holds 0-9: 0 is black, 9 is white, 5 is gray.

# %%
g_image = np.array([  # Slash /
    [[[0], [0], [9]],
     [[0], [5], [0]],
     [[9], [0], [0]]],

    [[[0], [0], [8]],
     [[0], [8], [0]],
     [[8], [0], [0]]],

    # Backslash \
    [[[9], [0], [0]],
     [[0], [9], [0]],
     [[0], [0], [9]]],

    [[[8], [0], [0]],
     [[0], [8], [0]],
     [[0], [0], [8]]],
])  # fmt: skip
images = ops.convert_to_tensor(g_image)
print("gray images:", tuple(ops.shape(images)))
assert tuple(ops.shape(images)) == (4, 3, 3, 1)
print("first image (a slash):")
print(ops.convert_to_numpy(images[0, :, :, 0]))

# %% [markdown]
# ## Reshape: turn each 3x2 image into one vector of 6 values

# %%
ds = np.array([
    [[0, 0], [0, 0], [0, 0]],  # sample 0
    [[1, 2], [3, 4], [5, 6]],  # sample 1
    [[7, 7], [8, 8], [9, 9]],  # sample 2
    [[4, 0], [0, 1], [0, 0]],  # sample 3
])  # fmt: skip
print(ds.shape)
ds1 = ops.convert_to_numpy(ops.reshape(ops.convert_to_tensor(ds), (4, 3 * 2)))
print(ds1)
print(ds1.shape)
print(ds1[0].shape)
assert ds1.shape == (4, 6) and ds1[1].tolist() == [1, 2, 3, 4, 5, 6]
