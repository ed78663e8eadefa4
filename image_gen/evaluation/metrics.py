"""Sample-quality metrics on feature vectors: Frechet distance, KID, precision/recall, class accuracy.

All functions take features [N, D] (any float dtype; computed in float64) of a reference set and a sample set.
Inception FID is :func:`inception_features` + :func:`frechet_distance`, only when a weights file is given.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

INCEPTION_MISSING = (
    "Inception FID skipped: no Inception-v3 weights file given (image-gen-eval --inception-weights <path>: "
    "a torchvision inception_v3 state dict or a TorchScript FID detector; the weights cannot be "
    "downloaded offline)"
)


def gaussian_stats(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64) of features [N, D]."""
    x = features.double().cpu().numpy()
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(ref: Tensor, sample: Tensor) -> float:
    """|mu_r - mu_s|^2 + tr(S_r + S_s - 2 (S_r S_s)^(1/2)) between Gaussians fitted to [N, D] features."""
    mu1, sigma1 = gaussian_stats(ref)
    mu2, sigma2 = gaussian_stats(sample)
    with warnings.catch_warnings():  # a singular product (few samples) is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: regularise as pytorch-fid does
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def kernel_inception_distance(
    ref: Tensor, sample: Tensor, num_subsets: int = 20, subset_size: int = 500, seed: int = 0
) -> float:
    """KID: unbiased MMD^2 with the cubic kernel (x.y / D + 1)^3, averaged over random subsets."""
    x, y = ref.double(), sample.double()
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set; got {x.shape[0]} and {y.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    dim = x.shape[1]
    values = []
    for _ in range(num_subsets):
        a = x[torch.randperm(x.shape[0], generator=generator)[:size]]
        b = y[torch.randperm(y.shape[0], generator=generator)[:size]]
        k_aa, k_bb, k_ab = ((u @ v.T / dim + 1.0) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        off = size * (size - 1)
        mmd = (k_aa.sum() - k_aa.diagonal().sum()) / off + (k_bb.sum() - k_bb.diagonal().sum()) / off
        values.append(float(mmd - 2.0 * k_ab.mean()))
    return float(np.mean(values))


def _kth_neighbour_radius(x: Tensor, k: int) -> Tensor:
    dist = torch.cdist(x, x)  # [N, N]; column 0 of the sorted row is the point itself
    return dist.kthvalue(k + 1, dim=1).values  # [N]


def precision_recall(ref: Tensor, sample: Tensor, k: int = 3, max_points: int = 5000) -> tuple[float, float]:
    """Improved precision/recall (Kynkaanniemi et al. 2019) with k-NN balls in feature space.

    precision: share of samples inside some reference point's k-NN ball; recall: the converse.
    """
    x, y = ref[:max_points].double(), sample[:max_points].double()
    radius_x, radius_y = _kth_neighbour_radius(x, k), _kth_neighbour_radius(y, k)
    dist = torch.cdist(y, x)  # [Ns, Nr]
    precision = (dist <= radius_x.unsqueeze(0)).any(dim=1).double().mean()
    recall = (dist.T <= radius_y.unsqueeze(0)).any(dim=1).double().mean()
    return float(precision), float(recall)


def class_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of samples the evaluator assigns to the class they were generated for."""
    return float((logits.argmax(dim=1) == labels).double().mean())


def nearest_train_distance(samples: Tensor, train: Tensor, batch_size: int = 1000, candidates: int = 8
                           ) -> Tensor:
    """Pixel L2 distance of each sample [N, ...] to its nearest training image [M, ...]: [N].

    cdist's fast path (|a|^2 + |b|^2 - 2ab) loses the small distances to cancellation (a copy of a training
    image scored ~0.02, not 0, on one CPU), so it only shortlists the ``candidates`` nearest rows, whose
    distances are then computed directly."""
    flat_train = train.flatten(1).float()  # [M, D]
    k = min(candidates, flat_train.shape[0])
    out = []
    for i in range(0, samples.shape[0], batch_size):
        batch = samples[i : i + batch_size].flatten(1).float()  # [B, D]
        shortlist = torch.cdist(batch, flat_train).topk(k, dim=1, largest=False).indices  # [B, k]
        exact = (batch[:, None] - flat_train[shortlist]).norm(dim=-1)  # [B, k]
        out.append(exact.min(dim=1).values)
    return torch.cat(out)


def all_metrics(
    ref_feats: Tensor, sample_feats: Tensor, sample_logits: Tensor, sample_labels: Tensor, seed: int = 0
) -> dict[str, float]:
    precision, recall = precision_recall(ref_feats, sample_feats)
    return {
        "fd": frechet_distance(ref_feats, sample_feats),
        "kid": kernel_inception_distance(ref_feats, sample_feats, seed=seed),
        "precision": precision,
        "recall": recall,
        "class_accuracy": class_accuracy(sample_logits, sample_labels),
    }


def load_inception(weights_path: str | Path) -> torch.nn.Module:
    """Inception-v3 from a local file: a TorchScript detector (clean-fid / StyleGAN 'inception-2015-12-05.pt',
    called with uint8-range images and ``return_features=True``) or a torchvision ``inception_v3``
    state dict (its classifier and auxiliary head are ignored: only the 2048-d pool3 features are used)."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"inception weights {path} not found; {INCEPTION_MISSING}")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as not_torchscript:
        from torchvision.models import inception_v3

        model = inception_v3(weights=None, aux_logits=False, init_weights=False)
        model.fc = torch.nn.Identity()  # pool3 features, 2048-d
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no pickled code
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict or TorchScript "
                             "module") from not_torchscript
        # the 1000- or 1008-way classifier (torchvision / pytorch-fid) and the aux head are not used
        state = {key.removeprefix("module."): value for key, value in state.items()
                 if not key.removeprefix("module.").startswith(("AuxLogits.", "fc."))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:  # a random Inception would give meaningless FIDs: refuse it
            raise ValueError(f"{path} is not an Inception-v3 state dict: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}; pass a torchvision inception_v3 state dict "
                             "or a TorchScript detector") from not_torchscript
        return model.eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: Tensor, batch_size: int = 100) -> Tensor:
    """images [N, 1, H, W] in [-1, 1] -> 2048-d pool3 features (grey repeated to RGB, resized to 299)."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].float().repeat(1, 3, 1, 1)
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if isinstance(model, torch.jit.ScriptModule):
            out.append(model(((x + 1) * 127.5).clamp(0, 255), return_features=True))
        else:
            out.append(model(x))
    return torch.cat(out).double()
