import torch

torch.set_num_threads(1)  # small MLPs and 2 cores: one thread is fastest
