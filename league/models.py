"""Neural networks picked from gymnasium spaces.

This module owns the mapping space -> network: observation encoders (MLP for
vectors, Nature-CNN for images, and on request a one-layer board CNN for small
grids of feature planes), action distributions (masked categorical,
diagonal Gaussian, factorised categorical) and the two model families the
algorithms train: `ActorCritic` (PPO, A2C) and `QNetwork` (DQN).

Observations arrive as numpy batches already flattened by the env wrappers (no
Dict/Tuple); models take them in their raw dtype and do the float conversion on
the device, so uint8 images cross to a GPU at a quarter of the float size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from league.errors import ConfigError
from league.symmetry import SYMMETRY_MODES, check_symmetries

# Finite rather than -inf: softmax gives an exact 0 for these entries and
# 0 * MASKED_LOGIT stays 0 in the entropy, where 0 * -inf would be NaN.
MASKED_LOGIT = -1e9

# Smallest height/width the Nature-CNN's three convolutions leave non-empty.
NATURE_CNN_MIN_SIZE = 36
# Board observations (3-D, smaller than that): one BOARD_KERNEL-square convolution.
BOARD_KERNEL = 4
BOARD_CHANNELS = 32

SUPPORTED_OBSERVATIONS = (
    "Box (1-D vectors go to an MLP; 2-D grayscale or 3-D HWC images of at least "
    f"{NATURE_CNN_MIN_SIZE}x{NATURE_CNN_MIN_SIZE} go to a CNN; other shapes are flattened "
    "into an MLP, or 3-D HWC boards into a board CNN with encoder='board'), Discrete and "
    "MultiDiscrete (one-hot), MultiBinary. Nested Dict/Tuple spaces must be flattened "
    "first (the env wrappers do this)"
)
SUPPORTED_ACTIONS = (
    "Discrete (masked categorical), Box (diagonal Gaussian), MultiDiscrete and "
    "MultiBinary (factorised categorical)"
)


class UnsupportedSpaceError(ConfigError):
    """Raised when no model here can handle a space; the message names the space and
    lists the supported ones."""


def unsupported_space(
    kind: str, space: spaces.Space, supported: str, where: str | None = None
) -> UnsupportedSpaceError:
    """Build the error for a `kind` ("observation"/"action") space nothing supports."""
    prefix = f"{where}: " if where else ""
    return UnsupportedSpaceError(
        f"{prefix}{kind} space {space} is not supported. Supported {kind} spaces: {supported}."
    )


def layer_init(layer: nn.Module, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights, constant bias: the initialisation PPO implementations are
    tuned with (small `std` on output layers keeps the first policy near uniform)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def legal_mask(action_mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Check a (B, n) mask and treat rows without any legal action as fully legal.

    Such rows only come from seats the env does not use (e.g. dead seats with
    zero observations); without this they would be NaN in a softmax or -inf in a
    max over Q-values.
    """
    if action_mask is None:
        return None
    if action_mask.shape[-1] != n:
        raise ValueError(
            f"action_mask has {action_mask.shape[-1]} columns but the action space has "
            f"{n} actions (masks are (batch, n) bool, True = legal)"
        )
    mask = action_mask.bool()
    return mask | ~mask.any(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------
# Observation encoders


def is_image_space(space: spaces.Space) -> bool:
    """2-D (H, W) or 3-D (H, W, C) Box large enough for the Nature-CNN."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) in (2, 3)
        and space.shape[0] >= NATURE_CNN_MIN_SIZE
        and space.shape[1] >= NATURE_CNN_MIN_SIZE
    )


def is_board_space(space: spaces.Space) -> bool:
    """3-D (H, W, C) Box smaller than an image: a board of feature planes
    (connect four 6x7x2, chess 8x8x111, go 19x19x17)."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 3
        and min(space.shape[:2]) >= 2
        and not is_image_space(space)
    )


class VectorObservation(nn.Module):
    """Turns a batch of observations of a non-image space into (B, D) float32:
    Box and MultiBinary are flattened, Discrete and MultiDiscrete one-hot encoded."""

    def __init__(self, space: spaces.Space) -> None:
        super().__init__()
        if isinstance(space, spaces.Discrete):
            sizes, start = [int(space.n)], [int(space.start)]
        elif isinstance(space, spaces.MultiDiscrete):
            sizes, start = space.nvec.reshape(-1).tolist(), space.start.reshape(-1).tolist()
        else:
            sizes, start = [], []
        self.one_hot_sizes = sizes
        self.register_buffer("start", torch.tensor(start, dtype=torch.long))
        self.out_dim = sum(sizes) if sizes else int(np.prod(space.shape, dtype=int))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[0]
        if not self.one_hot_sizes:
            return obs.reshape(batch, -1).float()
        indices = obs.reshape(batch, -1).long() - self.start
        one_hots = [
            nn.functional.one_hot(indices[:, i], n).float()
            for i, n in enumerate(self.one_hot_sizes)
        ]
        return torch.cat(one_hots, dim=-1)


# Frames with more pixels than this are downsampled inside the encoder by default:
# the 84 x 84 of Atari pipelines (Mnih et al., 2015).
IMAGE_PIXELS = 84 * 84


def downsampled_size(height: int, width: int, max_pixels: int | None) -> tuple[int, int]:
    """(height, width) scaled to about `max_pixels` pixels, aspect kept, each side at
    least what the Nature-CNN needs; unchanged when already small enough or None."""
    if max_pixels is None or height * width <= max_pixels:
        return height, width
    f = float(np.sqrt(max_pixels / (height * width)))
    return max(NATURE_CNN_MIN_SIZE, round(height * f)), max(NATURE_CNN_MIN_SIZE, round(width * f))


class ImageObservation(nn.Module):
    """(B, H, W[, C]) images, channels last as envs produce them, to (B, C, h, w)
    float; uint8 pixels are scaled to [0, 1]. Frames of more than `max_pixels`
    pixels are downsampled to about that many by area averaging (aspect kept)."""

    def __init__(self, space: spaces.Box, max_pixels: int | None = IMAGE_PIXELS) -> None:
        super().__init__()
        self.scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0
        self.channels = space.shape[2] if len(space.shape) == 3 else 1
        self.size = downsampled_size(space.shape[0], space.shape[1], max_pixels)
        self.resize = self.size != tuple(space.shape[:2])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() == 3:
            obs = obs.unsqueeze(-1)
        images = obs.permute(0, 3, 1, 2).float() * self.scale
        if self.resize:
            images = nn.functional.interpolate(images, size=self.size, mode="area")
        return images


def mlp(in_dim: int, hidden_sizes: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, size)), activation()]
        in_dim = size
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """The convolutional torso of Mnih et al. (2015), ending in 512 ReLU features."""

    out_dim = 512

    def __init__(self, space: spaces.Box, max_pixels: int | None = IMAGE_PIXELS) -> None:
        super().__init__()
        self.image = ImageObservation(space, max_pixels)
        self.convs = nn.Sequential(
            layer_init(nn.Conv2d(self.image.channels, 32, 8, stride=4)),
            nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)),
            nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            height, width = self.image.size
            flat = self.convs(torch.zeros(1, self.image.channels, height, width)).shape[1]
        self.fc = nn.Sequential(layer_init(nn.Linear(flat, self.out_dim)), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(self.image(obs)))


class BoardCNN(nn.Module):
    """One convolution over every 4x4 window of the board (BOARD_CHANNELS ReLU
    features each), then the MLP: the window sees every line of four, so a
    pattern learnt in one place is recognised everywhere on the board.

    With `support`, each window also reads the row under it: that row's cells and
    whether they are on the board (under the bottom row they are not). In a
    gravity game (connect four) a window then knows which of its empty cells a
    piece can drop into next, which a 4x4 window cannot see for its bottom row.

    The convolution is a gather of each window's cells and one matrix product
    (the same weights as a `Conv2d`, 2-3x faster on the 1-16 boards acted at a
    time). Values are used as they are: board planes are 0/1, not pixels.
    """

    def __init__(
        self,
        space: spaces.Box,
        hidden_sizes: Sequence[int],
        activation: type[nn.Module],
        support: bool = False,
    ) -> None:
        super().__init__()
        height, width, channels = space.shape
        k = min(BOARD_KERNEL, height, width)
        # Indices into the flattened (H, W, C) board; with support, followed by two
        # constants, 1 and 0: the row under the board reads 0 for its pieces and for
        # "on the board", the rows on it read 1 for "on the board".
        one, zero = height * width * channels, height * width * channels + 1

        def cell(row: int, col: int) -> list[int]:
            return [(row * width + col) * channels + c for c in range(channels)]

        def support_cells(row: int, col: int) -> list[int]:
            if row < height:
                return [*cell(row, col), one]
            return [zero] * (channels + 1)

        windows = []
        for i in range(height - k + 1):
            for j in range(width - k + 1):
                window = [x for a in range(k) for b in range(k) for x in cell(i + a, j + b)]
                if support:
                    window += [x for b in range(k) for x in support_cells(i + k, j + b)]
                windows.append(window)
        # (windows, cells per window) indices into the flattened board and the constants.
        self.register_buffer("windows", torch.tensor(windows), persistent=False)
        # The leftmost board column of each window, in the order of `windows`.
        self.window_columns = [j for _ in range(height - k + 1) for j in range(width - k + 1)]
        self.kernel, self.columns, self.support = k, width, support
        self.conv = layer_init(nn.Linear(len(windows[0]), BOARD_CHANNELS))
        flat = BOARD_CHANNELS * len(windows)
        self.body = mlp(flat, hidden_sizes, activation)
        self.out_dim = hidden_sizes[-1] if hidden_sizes else flat

    def gather(self, flat: torch.Tensor) -> torch.Tensor:
        """(..., windows, cells per window) floats from flattened boards (..., H*W*C)."""
        # Gathered before the cast to float: the same values, fewer bytes moved (int8 boards).
        if self.support:  # made where `flat` is: no copy from the host on a GPU
            lead = flat.shape[:-1]
            flat = torch.cat([flat, flat.new_ones(*lead, 1), flat.new_zeros(*lead, 1)], -1)
        return flat[..., self.windows].float()

    def window_features(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, windows, BOARD_CHANNELS): the convolution's output, window by window."""
        return torch.relu(self.conv(self.gather(obs.reshape(obs.shape[0], -1))))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(self.window_features(obs).flatten(1))


ENCODERS = ("auto", "mlp", "board", "cnn")


def pick_encoder(space: spaces.Space, encoder: str = "auto", where: str | None = None) -> str:
    """The encoder kind for `space`: "cnn" (Nature-CNN), "board" or "mlp".

    "auto" picks the Nature-CNN for images and the MLP for everything else; the
    board CNN is chosen by name (docs/algorithms.md). Naming one checks it fits.
    """
    if encoder not in ENCODERS:
        raise ConfigError(f"encoder={encoder!r} is unknown; valid: {list(ENCODERS)}")
    fits = {"cnn": is_image_space(space), "board": is_board_space(space), "mlp": True}
    if encoder == "auto":
        return "cnn" if fits["cnn"] else "mlp"
    if not fits[encoder]:
        prefix = f"{where}: " if where else ""
        need = {
            "cnn": f"a 2-D or 3-D Box of at least {NATURE_CNN_MIN_SIZE}x{NATURE_CNN_MIN_SIZE}",
            "board": "a 3-D (H, W, C) Box",
        }[encoder]
        raise ConfigError(f"{prefix}encoder={encoder!r} needs {need}, not {space}")
    return encoder


def make_encoder(
    space: spaces.Space,
    hidden_sizes: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.Tanh,
    where: str | None = None,
    encoder: str = "auto",
    image_pixels: int | None = IMAGE_PIXELS,
    board_support: bool = False,
) -> tuple[nn.Module, int]:
    """Build the observation encoder for `space`: returns (module, feature size).
    Image frames of more than `image_pixels` pixels are downsampled first;
    `board_support` gives a board CNN's windows the row under them (BoardCNN)."""
    supported = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
    if not isinstance(space, supported):
        raise unsupported_space("observation", space, SUPPORTED_OBSERVATIONS, where)
    kind = pick_encoder(space, encoder, where)
    if kind == "cnn":
        cnn = NatureCNN(space, image_pixels)
        return cnn, cnn.out_dim
    if kind == "board":
        board = BoardCNN(space, hidden_sizes, activation, board_support)
        return board, board.out_dim
    vector = VectorObservation(space)
    body = mlp(vector.out_dim, hidden_sizes, activation)
    return nn.Sequential(vector, body), (hidden_sizes[-1] if hidden_sizes else vector.out_dim)


# ---------------------------------------------------------------------------
# Action distributions. Each has sample(generator), mode(), log_prob(action)
# and entropy(); actions are in the env's format (offsets by `start` included).
# Sampling is a deterministic function of noise drawn first (`noise(rows,
# generator)` then `sample_from(noise)`), so a stacked population that draws
# each member's noise from that member's generator acts exactly as the member
# would alone (league/algos/stacked.py).


class MaskedCategorical:
    """Categorical over n actions whose illegal entries have probability exactly 0,
    so they are never sampled and add nothing to the entropy."""

    def __init__(
        self, logits: torch.Tensor, action_mask: torch.Tensor | None = None, start: int = 0
    ) -> None:
        mask = legal_mask(action_mask, logits.shape[-1])
        if mask is not None:
            logits = logits.masked_fill(~mask, MASKED_LOGIT)
        self.logits = torch.log_softmax(logits, dim=-1)
        self.start = start

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def _offset(self, index: torch.Tensor) -> torch.Tensor:
        return index + self.start if self.start else index

    def noise(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One uniform number in [0, 1) per row."""
        return torch.rand(rows, generator=generator, device=self.logits.device)

    def sample_from(self, noise: torch.Tensor) -> torch.Tensor:
        # Inverse CDF: the first action whose cumulative probability reaches
        # (1 - u) * total. 1 - u is in (0, 1], so a leading illegal action (prob 0,
        # cumulative 0) is never chosen, and nor is one past the last legal action.
        cdf = self.probs.cumsum(dim=-1)
        target = (1.0 - noise).unsqueeze(-1) * cdf[..., -1:]
        index = (cdf < target).sum(dim=-1)
        return self._offset(index.clamp_(max=cdf.shape[-1] - 1))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_from(self.noise(self.logits.shape[0], generator))

    def mode(self) -> torch.Tensor:
        return self._offset(self.logits.argmax(dim=-1))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        index = action.reshape(-1, 1).long()
        if self.start:
            index = index - self.start
        return self.logits.gather(-1, index).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(dim=-1)


class DiagGaussian:
    """Independent Normal per action dimension, samples clipped to the Box bounds.

    log_prob is taken at the action returned (the clipped one): the batch only
    carries that action, and learn() must recompute exactly the log-probability
    the actor reported or PPO's ratio is wrong from the first epoch.
    """

    def __init__(
        self, mean: torch.Tensor, log_std: torch.Tensor, low: torch.Tensor, high: torch.Tensor
    ) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()
        self.low, self.high = low, high

    def noise(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise, one number per row and action dimension."""
        shape = (rows, *self.mean.shape[1:])
        return torch.randn(shape, generator=generator, device=self.mean.device)

    def sample_from(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.mean + self.std * noise, self.low, self.high)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_from(self.noise(self.mean.shape[0], generator))

    def mode(self) -> torch.Tensor:
        return torch.clamp(self.mean, self.low, self.high)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action.reshape(self.mean.shape) - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * np.log(2 * np.pi)).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 + 0.5 * np.log(2 * np.pi) + self.log_std).sum(dim=-1)


class FactorisedCategorical:
    """One masked categorical per dimension of a MultiDiscrete action; the joint
    log-probability and entropy are sums over dimensions. The optional mask is
    the per-dimension masks concatenated: (B, sum(nvec))."""

    def __init__(
        self,
        logits: torch.Tensor,
        nvec: Sequence[int],
        start: Sequence[int],
        action_mask: torch.Tensor | None = None,
    ) -> None:
        if action_mask is not None and action_mask.shape[-1] != sum(nvec):
            raise ValueError(
                f"action_mask has {action_mask.shape[-1]} columns; a MultiDiscrete mask is the "
                f"per-dimension masks concatenated, {sum(nvec)} columns for nvec={list(nvec)}"
            )
        masks = [None] * len(nvec) if action_mask is None else action_mask.split(list(nvec), -1)
        self.dims = [
            MaskedCategorical(part, mask, s)
            for part, mask, s in zip(logits.split(list(nvec), -1), masks, start, strict=True)
        ]

    def noise(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One uniform number per row and dimension."""
        device = self.dims[0].logits.device
        return torch.rand(rows, len(self.dims), generator=generator, device=device)

    def sample_from(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.stack([d.sample_from(noise[:, i]) for i, d in enumerate(self.dims)], dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_from(self.noise(self.dims[0].logits.shape[0], generator))

    def mode(self) -> torch.Tensor:
        return torch.stack([d.mode() for d in self.dims], dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        action = action.reshape(action.shape[0], len(self.dims))
        return sum(d.log_prob(action[:, i]) for i, d in enumerate(self.dims))

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy() for d in self.dims)


Distribution = MaskedCategorical | DiagGaussian | FactorisedCategorical


class CategoricalHead(nn.Module):
    def __init__(self, in_dim: int, space: spaces.Discrete) -> None:
        super().__init__()
        self.logits = layer_init(nn.Linear(in_dim, int(space.n)), std=0.01)
        self.start = int(space.start)

    def forward(self, features: torch.Tensor, action_mask: torch.Tensor | None) -> Distribution:
        return MaskedCategorical(self.logits(features), action_mask, self.start)


class GaussianHead(nn.Module):
    """State-dependent mean, state-independent log standard deviation."""

    def __init__(self, in_dim: int, space: spaces.Box) -> None:
        super().__init__()
        size = int(np.prod(space.shape, dtype=int))
        self.mean = layer_init(nn.Linear(in_dim, size), std=0.01)
        self.log_std = nn.Parameter(torch.zeros(size))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32).reshape(-1))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32).reshape(-1))

    def forward(self, features: torch.Tensor, action_mask: torch.Tensor | None) -> Distribution:
        if action_mask is not None:
            raise ValueError("action masks apply to discrete actions; this action space is a Box")
        return DiagGaussian(self.mean(features), self.log_std, self.low, self.high)


class FactorisedHead(nn.Module):
    def __init__(self, in_dim: int, space: spaces.MultiDiscrete | spaces.MultiBinary) -> None:
        super().__init__()
        if isinstance(space, spaces.MultiBinary):
            size = int(np.prod(space.shape, dtype=int))
            self.nvec, self.start = [2] * size, [0] * size
        else:
            self.nvec = [int(n) for n in space.nvec.reshape(-1)]
            self.start = [int(s) for s in space.start.reshape(-1)]
        self.logits = layer_init(nn.Linear(in_dim, sum(self.nvec)), std=0.01)

    def forward(self, features: torch.Tensor, action_mask: torch.Tensor | None) -> Distribution:
        return FactorisedCategorical(self.logits(features), self.nvec, self.start, action_mask)


class ColumnHead(nn.Module):
    """Logits for moves that name a column of a board (connect four), from the
    board CNN of the actor: the hidden layers' logits, as `CategoricalHead`'s,
    plus a score per column from every 4x4 window over that column. One small
    layer turns a window's features into a score for each of its columns, the
    same layer for every window, so a move the network learns to rate in one
    place (a win, a block) is rated so wherever the pattern lies.

    `scatter` (windows * k, columns) adds each window's k scores into the board
    columns they cover; a buffer outside the state dict, rebuilt from the space.
    """

    def __init__(self, in_dim: int, space: spaces.Discrete, board: BoardCNN) -> None:
        super().__init__()
        self.logits = layer_init(nn.Linear(in_dim, int(space.n)), std=0.01)
        self.start = int(space.start)
        k, columns = board.kernel, board.columns
        self.window = layer_init(nn.Linear(BOARD_CHANNELS, k), std=0.01)
        scatter = torch.zeros(len(board.window_columns), k, columns)
        for w, j in enumerate(board.window_columns):
            scatter[w, torch.arange(k), j + torch.arange(k)] = 1.0
        self.register_buffer("scatter", scatter.flatten(0, 1), persistent=False)

    def column_logits(self, features: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """(B, columns) logits from the hidden features (B, F) and the board CNN's window
        features (B, windows, BOARD_CHANNELS)."""
        scores = self.window(windows).flatten(-2)  # (B, windows * k)
        return self.logits(features) + scores @ self.scatter


def column_head_fits(
    observation_space: spaces.Space, action_space: spaces.Space, encoder: str
) -> str | None:
    """Why `column_head=True` cannot work for these spaces and encoder (a sentence that
    follows "column_head=True"); None if it can."""
    if encoder != "board":
        return (
            f"needs encoder='board', not {encoder!r}: give the learner encoder='board' "
            "or leave column_head off"
        )
    width = observation_space.shape[1]
    if not isinstance(action_space, spaces.Discrete) or int(action_space.n) != width:
        return (
            f"needs one Discrete move per board column ({width}), not {action_space}: "
            "leave column_head off"
        )
    return None


def board_support_fits(
    observation_space: spaces.Space, action_space: spaces.Space, encoder: str
) -> str | None:
    """Why `board_support=True` cannot work with this encoder (a sentence that follows
    "board_support=True"); None if it can. The spaces are those `column_head_fits` takes."""
    if encoder != "board":
        return (
            f"needs encoder='board', not {encoder!r}: give the learner encoder='board' "
            "or leave board_support off"
        )
    return None


def make_action_head(space: spaces.Space, in_dim: int, where: str | None = None) -> nn.Module:
    """Pick the distribution head for an action space."""
    if isinstance(space, spaces.Discrete):
        return CategoricalHead(in_dim, space)
    if isinstance(space, spaces.Box):
        return GaussianHead(in_dim, space)
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        return FactorisedHead(in_dim, space)
    raise unsupported_space("action", space, SUPPORTED_ACTIONS, where)


class Symmetries(nn.Module):
    """Makes a model invariant to the symmetries of a board (league.symmetry).

    Two ways, the same interface: `inputs` gives what the network sees,
    `logits` and `values` turn its outputs back into the original position's.

    - "average": the network sees every view; its logits (each put back in the
      original action order) and values are averaged. One pass per view.
    - "canonical": every observation is replaced by one fixed view of it (the view
      whose flat cells have the smallest projection on a fixed random vector, so
      all views of a position pick the same one), and the logits are mapped back
      to the original action order. One forward pass per observation plus index
      arithmetic; but the view can jump from one move to the next, which the
      network must learn around (docs/algorithms.md).

    The index tables are buffers outside the state dict: the algorithm's config
    carries them, so checkpoints keep their keys.
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[Sequence[int]]],
        observation_space: spaces.Space,
        action_space: spaces.Space,
        where: str | None = None,
        mode: str = "average",
    ) -> None:
        super().__init__()
        where = where or "model"
        if not isinstance(action_space, spaces.Discrete) or not isinstance(
            observation_space, spaces.Box
        ):
            raise ConfigError(
                f"{where}: symmetries need a Box observation and Discrete actions, got "
                f"{observation_space} and {action_space}; set symmetries=False"
            )
        if mode not in SYMMETRY_MODES:
            raise ConfigError(f"{where}: symmetry_mode must be one of {SYMMETRY_MODES}")
        obs_size = int(np.prod(observation_space.shape, dtype=int))
        obs_index, action_index = check_symmetries(pairs, obs_size, int(action_space.n), where)
        self.register_buffer("obs_index", torch.as_tensor(obs_index), persistent=False)
        self.register_buffer("action_index", torch.as_tensor(action_index), persistent=False)
        if mode == "canonical":
            seeded = torch.Generator().manual_seed(0)
            key = torch.rand(obs_size, generator=seeded, dtype=torch.float64)
            self.register_buffer("key", key, persistent=False)
        self.views, self.mode = len(obs_index), mode

    def inputs(self, obs: torch.Tensor, lead: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(what the network sees, context for `logits`/`values`) for observations of
        shape (*L, B, *obs_shape), `lead` = len(L) + 1. "average" stacks the views
        view-major along B: (*L, views * B, *obs_shape)."""
        batch, shape = obs.shape[:lead], obs.shape[lead:]
        views = obs.reshape(*batch, -1)[..., self.obs_index]  # (*L, B, views, D)
        if self.mode == "average":
            return views.movedim(-2, -3).reshape(*batch[:-1], -1, *shape), None
        pick = (views.to(torch.float64) @ self.key).argmin(-1)  # (*L, B)
        index = pick[..., None, None].expand(*batch, 1, views.shape[-1])
        chosen = views.gather(-2, index)
        # A position that some views leave unchanged (the empty board) is seen the same
        # way through each of them: its logits are averaged over those views' action
        # orders, which keeps the policy exactly invariant there too.
        same = (views == chosen).all(-1)
        return chosen.reshape(obs.shape), same / same.sum(-1, keepdim=True)

    def logits(self, logits: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """The network's action logits in the original action order: (*L, B, A)."""
        if weights is None:
            *lead, rows, actions = logits.shape
            views = logits.reshape(*lead, self.views, rows // self.views, actions)
            return views.gather(-1, self.action_index.unsqueeze(-2).expand_as(views)).mean(-3)
        # (*L, B, views, A): the logits in each view's action order, weighted by `weights`.
        orders = self.action_index.expand(*weights.shape, -1)
        spread = logits.unsqueeze(-2).expand_as(orders).gather(-1, orders)
        return (weights.unsqueeze(-1) * spread).sum(-2)

    def values(self, values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """The network's values for the original rows: (*L, B)."""
        if weights is not None:
            return values
        *lead, rows = values.shape
        return values.reshape(*lead, self.views, rows // self.views).mean(-2)


# ---------------------------------------------------------------------------
# Models the algorithms train. Both expose act(obs, action_mask, deterministic,
# generator, ...) -> (actions, extras) and get_value(obs, action_mask).


class ActorCritic(nn.Module):
    """Policy and value function for PPO and A2C.

    Vector and board observations get separate actor and critic networks, so the
    value loss cannot disturb the policy's features; images share one CNN torso,
    whose cost would otherwise double. With `shared_body` the critic's head reads
    the actor's body too (AlphaZero's policy and value heads on one network): half
    the cost of a forward and backward pass, and the value loss shapes the
    features the policy reads.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_sizes: Sequence[int] = (64, 64),
        where: str | None = None,
        encoder: str = "auto",
        image_pixels: int | None = IMAGE_PIXELS,
        symmetries: Sequence[Sequence[Sequence[int]]] | None = None,
        symmetry_mode: str = "average",
        column_head: bool = False,
        board_support: bool = False,
        shared_body: bool = False,
    ) -> None:
        super().__init__()
        self.symmetries = (
            Symmetries(symmetries, observation_space, action_space, where, symmetry_mode)
            if symmetries
            else None
        )
        kind = pick_encoder(observation_space, encoder, where)
        if column_head and (why := column_head_fits(observation_space, action_space, kind)):
            raise ConfigError(f"{where or 'model'}: column_head=True {why}")
        if board_support and (why := board_support_fits(observation_space, action_space, kind)):
            raise ConfigError(f"{where or 'model'}: board_support=True {why}")
        self.shared = kind == "cnn"
        if self.shared:
            self.torso, feature_dim = make_encoder(
                observation_space, where=where, encoder="cnn", image_pixels=image_pixels
            )
        else:
            encoder_args = (observation_space, hidden_sizes, nn.Tanh, where, encoder)
            self.actor_body, feature_dim = make_encoder(*encoder_args, board_support=board_support)
            if not shared_body:
                self.critic_body, _ = make_encoder(*encoder_args, board_support=board_support)
        # The image CNN's torso is always shared; `shared_body` shares the actor's body.
        self.shared_body = shared_body and not self.shared
        self.column_head = column_head
        self.actor_head = (
            ColumnHead(feature_dim, action_space, self.actor_body)
            if column_head
            else make_action_head(action_space, feature_dim, where)
        )
        self.critic_head = layer_init(nn.Linear(feature_dim, 1), std=1.0)

    def _features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shared:
            features = self.torso(obs)
            return features, features
        actor = self.actor_body(obs)
        return actor, actor if self.shared_body else self.critic_body(obs)

    def _critic_features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.torso(obs)
        return self.actor_body(obs) if self.shared_body else self.critic_body(obs)

    def _logits(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The column head's logits and the actor's features (what the network sees, as
        `_features` takes)."""
        windows = self.actor_body.window_features(obs)
        features = self.actor_body.body(windows.flatten(1))
        return self.actor_head.column_logits(features, windows), features

    def get_value(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        sym = self.symmetries
        x, weights = (obs, None) if sym is None else sym.inputs(obs)
        value = self.critic_head(self._critic_features(x)).squeeze(-1)
        return value if sym is None else sym.values(value, weights)

    def get_action_and_value(
        self,
        obs: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        action: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log_prob(action), entropy, value); samples an action unless one is given."""
        dist, value = self._dist_and_value(obs, action_mask)
        if action is None:
            action = dist.mode() if deterministic else dist.sample(generator)
        return action, dist.log_prob(action), dist.entropy(), value

    def _dist_and_value(
        self, obs: torch.Tensor, action_mask: torch.Tensor | None
    ) -> tuple[Distribution, torch.Tensor]:
        sym = self.symmetries
        x, weights = (obs, None) if sym is None else sym.inputs(obs)
        if self.column_head:
            logits, features = self._logits(x)
            critic = features if self.shared_body else self.critic_body(x)
            value = self.critic_head(critic).squeeze(-1)
        else:
            actor_features, critic_features = self._features(x)
            value = self.critic_head(critic_features).squeeze(-1)
            if sym is None:
                return self.actor_head(actor_features, action_mask), value
            # Symmetries are Discrete-only, so the head is a CategoricalHead.
            logits = self.actor_head.logits(actor_features)
        if sym is not None:
            logits, value = sym.logits(logits, weights), sym.values(value, weights)
        return MaskedCategorical(logits, action_mask, self.actor_head.start), value

    def act(
        self,
        obs: torch.Tensor,
        action_mask: torch.Tensor | None,
        deterministic: bool,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # Acting has no use for the entropy that get_action_and_value adds.
        dist, value = self._dist_and_value(obs, action_mask)
        action = dist.mode() if deterministic else dist.sample(generator)
        return action, {"logprob": dist.log_prob(action), "value": value}


class QNetwork(nn.Module):
    """Action values Q(s, ·) for DQN; Discrete actions only."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_sizes: Sequence[int] = (64, 64),
        where: str | None = None,
        encoder: str = "auto",
        image_pixels: int | None = IMAGE_PIXELS,
        symmetries: Sequence[Sequence[Sequence[int]]] | None = None,
        symmetry_mode: str = "average",
    ) -> None:
        super().__init__()
        if not isinstance(action_space, spaces.Discrete):
            raise unsupported_space(
                "action",
                action_space,
                "Discrete only for DQN (use PPO or A2C for Box, MultiDiscrete or MultiBinary)",
                where,
            )
        self.n = int(action_space.n)
        self.start = int(action_space.start)
        self.body, feature_dim = make_encoder(
            observation_space, hidden_sizes, nn.ReLU, where, encoder, image_pixels
        )
        self.head = layer_init(nn.Linear(feature_dim, self.n), std=1.0)
        self.symmetries = (
            Symmetries(symmetries, observation_space, action_space, where, symmetry_mode)
            if symmetries
            else None
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        sym = self.symmetries
        if sym is None:
            return self.head(self.body(obs))
        x, weights = sym.inputs(obs)
        return sym.logits(self.head(self.body(x)), weights)

    def masked_q(self, obs: torch.Tensor, action_mask: torch.Tensor | None) -> torch.Tensor:
        """Q-values with illegal actions at -inf, so max/argmax only see legal ones."""
        q = self(obs)
        mask = legal_mask(action_mask, self.n)
        return q if mask is None else q.masked_fill(~mask, float("-inf"))

    def get_value(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.masked_q(obs, action_mask).max(dim=-1).values

    def act(
        self,
        obs: torch.Tensor,
        action_mask: torch.Tensor | None,
        deterministic: bool,
        generator: torch.Generator | None,
        epsilon: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Epsilon-greedy over legal actions; greedy when deterministic."""
        q = self.masked_q(obs, action_mask)
        value, action = q.max(dim=-1)
        if not deterministic and epsilon > 0:
            mask = legal_mask(action_mask, self.n)
            weights = torch.ones_like(q) if mask is None else mask.float()
            random_action = torch.multinomial(weights, 1, generator=generator).squeeze(-1)
            explore = torch.rand(q.shape[0], generator=generator, device=q.device) < epsilon
            action = torch.where(explore, random_action, action)
        return action + self.start, {"value": value}
