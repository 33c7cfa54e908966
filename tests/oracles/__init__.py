"""Loop oracles: per-joint, per-crop Python loops written as the official code
reads (HRNet, DarkPose, LPN, UDP-Pose encode/decode, OKS-NMS). posezoo's
vectorised codecs and NMS are tested against them, and ``tools/benchmark.py``
checks and times against them; they are not part of the package."""
