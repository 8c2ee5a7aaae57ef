"""The candidate models of one run: ONNX Runtime precisions (:mod:`.onnx`) and LiteRT ones (:mod:`.tflite`)."""
