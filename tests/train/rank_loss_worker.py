"""One rank of the gathered-CLIP-loss test, in a module light enough to spawn quickly."""

from __future__ import annotations

import torch


def rank_loss(rank: int, world: int, init_file: str, img: torch.Tensor, txt: torch.Tensor, out: str) -> None:
    from imagenet_captions.train.step import make_clip_loss

    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    n = img.shape[0] // world
    i = img[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    t = txt[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    loss = make_clip_loss(rank, world)(i, t, torch.tensor(10.0))
    loss.backward()
    torch.save({"loss": loss.detach(), "gi": i.grad, "gt": t.grad}, f"{out}.{rank}")
    torch.distributed.destroy_process_group()
