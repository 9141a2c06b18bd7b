"""Motion-blur synthesis, seedable and batched in torch (runs on the fly inside DataLoader workers).

Two families:

* **Kernel (uniform) blur**: DeblurGAN's random camera-trajectory kernels (Kupyn et al., CVPR 2018,
  Algorithm 1, after Boracchi & Foi, TIP 2012) convolved with the image (`random_trajectory_kernel`,
  `apply_kernel`). Kernel sizes and lengths are in pixels.
* **Trajectory (non-uniform, GoPro-like) blur**: an exposure simulated by averaging frames of the sharp
  image warped by homographies along a smooth random camera path (translation, in-plane rotation,
  zoom, slight perspective), optionally with a moving foreground region, averaged on sRGB values
  (like GOPRO_Large ``blur``) or in linear light (like ``blur_gamma``), plus optional highlight
  clipping, sensor noise and JPEG (`trajectory_blur`).

Trajectory-blur motion is expressed as a **fraction of the frame diagonal** (``frame_diag``, by default
the input's own diagonal). To blur a crop exactly as the full frame would be blurred, pass the full
frame's diagonal and the full frame's centre in crop pixel coordinates (``center``); the data pipeline
does this, so 128-pixel crops and full frames see the same blur in pixels.

Every blur type is three steps, one module each: `sampling` (every random draw: camera paths,
trajectories, kernels), `rendering` (deterministic image formation: warps, convolutions) and
`degradation` (sensor noise then JPEG, one step shared by all types); `synthesis` composes them
(`trajectory_blur`, `camera_shake_blur`, kernel blur) behind `BlurSynthesizer`.

Images are float tensors (3,H,W) or (N,3,H,W), RGB, in [0, 1]. Every random draw goes through the
``generator`` argument, so a seeded ``torch.Generator`` reproduces a blur exactly.
"""

from .degradation import Degradation, add_noise, apply_degradation, degrade, jpeg_roundtrip
from .rendering import (
    apply_kernel,
    kernel_from_path,
    kernel_support,
    linear_to_srgb,
    rasterize_trajectory,
    render_trajectory,
    srgb_to_linear,
)
from .sampling import CameraPaths, camera_shake_path, random_trajectory, random_trajectory_kernel, sample_camera_paths
from .synthesis import BlurSynthesizer, camera_shake_blur, trajectory_blur

__all__ = [
    "random_trajectory",
    "rasterize_trajectory",
    "random_trajectory_kernel",
    "apply_kernel",
    "sample_camera_paths",
    "trajectory_blur",
    "BlurSynthesizer",
    "camera_shake_path",
    "camera_shake_blur",
    "kernel_from_path",
    "kernel_support",
    "degrade",
    "srgb_to_linear",
    "linear_to_srgb",
    "add_noise",
    "jpeg_roundtrip",
    "CameraPaths",
    "Degradation",
    "apply_degradation",
    "render_trajectory",
]
