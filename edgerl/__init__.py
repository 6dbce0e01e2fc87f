"""edgerl: train RL policies while pruning them, then compact, export and deploy them.

Importing the top-level package imports neither torch nor onnxruntime, so the torch-free
runtime (`edgerl.runtime`) can be used on a robot that has only numpy and ONNX Runtime.
"""

__version__ = "0.1.0"
