from setuptools import find_packages, setup

setup(
    name="posezoo",
    version="0.1.0",
    description="Top-down keypoint toolkit: PoseResNet, HRNet, LPN, hourglass, A2J, AWR",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"posezoo.codecs": ["compiled_decode.cpp"], "posezoo.utils": ["jpeg_region.c"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=1.13",
        "numpy",
        "opencv-python-headless",
        "easydict",
        "pyyaml",
        "pycocotools",
        "tensorboard",
        "scipy",
        "tqdm",
        "matplotlib",
        "threadpoolctl",
    ],
    extras_require={"test": ["pytest", "h5py", "onnx", "onnxruntime", "faster-coco-eval"], "h5": ["h5py"],
                    "onnx": ["onnx", "onnxruntime"]},
)
