# Sourced by interop.sh and ort-profile.sh: installs ONNX Runtime for Node
# (onnxruntime-node@1.30.0, the same ORT version as the Go backend's) into third_party/node once.
if [ ! -d third_party/node/node_modules/onnxruntime-node ]; then
  mkdir -p third_party/node
  (cd third_party/node && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0)
fi
