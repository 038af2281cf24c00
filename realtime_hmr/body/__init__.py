"""The SMPL-like body: asset, skinning, joints, inverse kinematics (numpy and scipy only)."""

from realtime_hmr.body.humanoid import Humanoid
from realtime_hmr.body.model import Body, IKResult
from realtime_hmr.body.names import COCO17, HUMANOID, MEDIAPIPE33, SMPL24, SMPL24_PARENTS

__all__ = ["Body", "Humanoid", "IKResult", "SMPL24", "SMPL24_PARENTS", "COCO17", "MEDIAPIPE33", "HUMANOID"]
