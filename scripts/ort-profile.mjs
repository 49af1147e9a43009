// Per-op profile of a graph fewstep compiled for ONNX Runtime (`fewstep bench -dump-onnx DIR`),
// run by ONNX Runtime for Node (onnxruntime-node@1.30.0, the same ORT version as the backend) with
// ORT's own profiler. Inputs are random (floats in [-0.5, 0.5), integers 0, booleans false).
// Usage: node scripts/ort-profile.mjs MODEL.onnx [runs, default 5] [top nodes, default 25]
// Prints the time per op type and the slowest nodes, averaged over the profiled runs.
import { readdirSync, readFileSync, unlinkSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require(process.env.ORT_NODE || "../third_party/node/node_modules/onnxruntime-node");
const [path, runsArg, topArg] = process.argv.slice(2);
if (!path) {
  console.error("usage: node scripts/ort-profile.mjs MODEL.onnx [runs] [top]");
  process.exit(2);
}
const runs = Number(runsArg || 5), top = Number(topArg || 25);
const session = await ort.InferenceSession.create(path, { enableProfiling: true, profileFilePrefix: "/tmp/ort-profile" });

const feeds = {};
for (const meta of session.inputMetadata) {
  const dims = meta.shape.map(Number);
  const size = dims.reduce((a, b) => a * b, 1);
  let data;
  switch (meta.type) {
    case "float32": data = Float32Array.from({ length: size }, () => Math.random() - 0.5); break;
    case "int32": data = new Int32Array(size); break;
    case "int64": data = new BigInt64Array(size); break;
    case "bool": data = new Uint8Array(size); break;
    default: throw new Error(`input ${meta.name}: unsupported type ${meta.type}`);
  }
  feeds[meta.name] = new ort.Tensor(meta.type, data, dims);
}
await session.run(feeds); // warm-up (profiled too; dropped below)
const wall = [];
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  await session.run(feeds);
  wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
session.endProfiling(); // writes /tmp/ort-profile_<date>.json (the Node binding returns nothing)
const file = "/tmp/" + readdirSync("/tmp").filter((f) => f.startsWith("ort-profile_") && f.endsWith(".json")).sort().pop();
const events = JSON.parse(readFileSync(file, "utf8"));
unlinkSync(file);

// Keep the kernel events of the last `runs` model runs.
const runEvents = events.filter((e) => e.cat === "Session" && e.name === "model_run");
const firstTimed = runEvents.length > runs ? runEvents[runEvents.length - runs].ts : 0;
const kernels = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= firstTimed);
const byOp = new Map(), byNode = new Map();
let total = 0;
for (const e of kernels) {
  const op = e.args.op_name, node = e.name.slice(0, -"_kernel_time".length);
  const shape = JSON.stringify((e.args.output_type_shape || []).map((o) => Object.values(o)[0]));
  byOp.set(op, (byOp.get(op) || 0) + e.dur);
  const k = `${op} ${node} -> ${shape}`;
  byNode.set(k, (byNode.get(k) || 0) + e.dur);
  total += e.dur;
}
wall.sort((a, b) => a - b);
const ms = (us) => (us / runs / 1000).toFixed(1);
console.log(`${path}: median wall ${wall[Math.floor(wall.length / 2)].toFixed(1)} ms, kernels ${ms(total)} ms per run (${runs} runs)`);
console.log("\nper op type (ms per run, share of kernel time):");
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${op.padEnd(22)} ${ms(us).padStart(8)}  ${((100 * us) / total).toFixed(1).padStart(5)}%`);
}
console.log(`\nslowest ${top} nodes:`);
for (const [k, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`  ${ms(us).padStart(8)}  ${k}`);
}
