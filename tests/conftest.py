import torch

# The unit tests train tiny models: one thread is faster than two for them, and immune to a busy machine.
torch.set_num_threads(1)
