"""Tiny randomly initialised models of the interop tests (no download): a diffusers UNet2DModel
on 1 x 8 x 8 images and a TorchCFM UNetModelWrapper, each seeded without touching the global
RNG, and image data of their shape."""

import numpy as np
import torch

SHAPE = (1, 8, 8)


def diffusers_unet(seed: int = 0, out_channels: int = 1):
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=out_channels,
            layers_per_block=1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        )


def save_model_folder(folder, scheduler, seed: int = 0):
    """A model folder: config.json, the safetensors weights and scheduler_config.json."""
    diffusers_unet(seed).save_pretrained(folder)
    scheduler.save_pretrained(folder)
    return folder


def torchcfm_unet(seed: int = 0, heads: bool = True):
    """TorchCFM's UNetModelWrapper, 2 levels of 32 and 64 channels (TorchCFM's GroupNorm has 32
    groups), attention at 4 x 4 (with heads of 16 channels), every zero-initialised layer
    randomised so that every weight matters."""
    from torchcfm.models.unet.unet import UNetModelWrapper

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNetModelWrapper(
            dim=SHAPE,
            num_channels=32,
            num_res_blocks=1,
            channel_mult=[1, 2],
            attention_resolutions="4",
            num_head_channels=16 if heads else -1,
        )
        for p in net.parameters():
            if torch.all(p == 0):
                p.data.normal_(0.0, 0.05)
    return net.eval()


# wasserflow's unet with the same architecture (time fed unscaled, as TorchCFM does)
UNET_OPTIONS = {
    "size": "mnist",
    "channels": 32,
    "channel_mult": [1, 2],
    "attention_resolutions": [4],
    "head_channels": 16,
}


def image_data(path, n: int = 64, seed: int = 0):
    """n images (n, 1, 8, 8) in [-1, 1] saved as .npy; returns the data spec."""
    g = np.random.default_rng(seed)
    x = np.tanh(g.normal(size=(n, *SHAPE))).astype(np.float32)
    np.save(path, x)
    return f"nchw:{path}"
