"""Animal-Pose (Cao et al., ICCV 2019), ``DATASET.DATASET: animalpose``.

20 keypoints, 5 species (dog, cat, cow, horse, sheep) in one COCO-format file
per split, mmpose's layout (the COCO conversion it distributes)::

    ROOT/annotations/animalpose_<set>.json      (TRAIN_SET train, TEST_SET val)
    ROOT/<file_name>                            (e.g. VOC2012/JPEGImages/...)

Metric: OKS AP with the set's sigmas, plus PCK@0.05 of the box's longer side.
"""
from __future__ import annotations

import os

from .animal import ANIMALPOSE, AnimalCOCODataset


class AnimalPoseDataset(AnimalCOCODataset):
    keypoints = ANIMALPOSE

    @staticmethod
    def annotation_file(root: str, image_set: str) -> str:
        return os.path.join(root, "annotations", f"animalpose_{image_set}.json")

    @staticmethod
    def images_folder(root: str, image_set: str) -> str:
        return root


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> AnimalPoseDataset:
    return AnimalPoseDataset(cfg, image_set, is_train, codec)
