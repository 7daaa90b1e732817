"""Prediction on images, faces, video and webcam; Grad-CAM; export; the torch-free ONNX predictor."""
