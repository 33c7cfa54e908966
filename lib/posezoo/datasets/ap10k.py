"""AP-10K (Yu et al., NeurIPS 2021 Datasets track), ``DATASET.DATASET: ap10k``.

17 keypoints, 54 species in COCO format, mmpose's layout::

    ROOT/annotations/ap10k-<set>.json           (TRAIN_SET train-split1, TEST_SET val-split1 / test-split1)
    ROOT/data/<file_name>

Metric: OKS AP with AP-10K's own sigmas (COCOeval, species-agnostic matching),
plus PCK@0.05 of the box's longer side.
"""
from __future__ import annotations

import os

from .animal import AP10K, AnimalCOCODataset


class AP10KDataset(AnimalCOCODataset):
    keypoints = AP10K

    @staticmethod
    def annotation_file(root: str, image_set: str) -> str:
        return os.path.join(root, "annotations", f"ap10k-{image_set}.json")

    @staticmethod
    def images_folder(root: str, image_set: str) -> str:
        return os.path.join(root, "data")


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> AP10KDataset:
    return AP10KDataset(cfg, image_set, is_train, codec)
