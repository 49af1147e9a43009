// `make interop`: runs fewstep's exported ONNX denoiser and K-step generator with ONNX Runtime for
// Node (onnxruntime-node@1.30.0) on the inputs of a reference written by
// `fewstep export -format onnx -reference DIR`, and compares them with fewstep's own outputs:
// the denoiser's prediction on fewstep's backend, and the images of `fewstep sample -model` for
// the same seeds. Usage: node scripts/interop.mjs DIR [tolerance, default 1e-4 relative].
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require(process.env.ORT_NODE || "../third_party/node/node_modules/onnxruntime-node");
const dir = process.argv[2];
const tol = Number(process.argv[3] || 1e-4);
const ref = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8"));
const f32 = (name) => {
  const b = readFileSync(join(dir, name));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const [h, w, c] = ref.shape;
const n = ref.batch;
const img = [n, h, w, c];

// relErr is max |a − b| / max |b|: the error relative to the reference's scale.
function relErr(a, b) {
  let d = 0, s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / Math.max(s, 1e-12);
}

async function run(path, feeds, output) {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  const out = await session.run(feeds);
  return out[output].data;
}

const cond = new Int32Array(ref.cond);
// [N] class indices, or [N, 1+L] (class, then caption token ids) for a text model.
const condDims = ref.cond_shape ?? [n];
const pred = await run(ref.denoiser, {
  x: new ort.Tensor("float32", f32(ref.x), img),
  t: new ort.Tensor("float32", new Float32Array(ref.t), [n]),
  cond: new ort.Tensor("int32", cond, condDims),
}, "pred");
const feeds = { x_T: new ort.Tensor("float32", f32(ref.x_T), img), cond: new ort.Tensor("int32", cond, condDims) };
if (ref.z) feeds.z = new ort.Tensor("float32", f32(ref.z), [ref.z_steps, ...img]);
const images = await run(ref.generator, feeds, "images");
const e1 = relErr(pred, f32(ref.pred));
const e2 = relErr(images, f32(ref.images));
console.log(`onnxruntime-node ${ort.env.versions?.common ?? ""}: denoiser relative error ${e1.toExponential(3)} (${ref.denoiser})`);
console.log(`generator (${ref.sample}) relative error ${e2.toExponential(3)} (${ref.generator})`);
if (!(e1 <= tol && e2 <= tol)) {
  console.error(`FAIL: above the tolerance ${tol}`);
  process.exit(1);
}
console.log(`OK: both within ${tol}`);
