// ONNX Runtime worker for bench/peers.py: loads ONNX files once, then times them on request.
// usage: node peers_ort_worker.js [--threads 2] [--size 256] [--channels 1] KEY=FILE.onnx ...   (ORT_DIR: onnxruntime-node install)
// Reads lines "KEY RUNS" on stdin, answers one JSON line {key, ms: [...]} per request (after 2
// warm-up runs); "quit" ends it. The input is fixed pseudo-random noise of the model's shape.
'use strict';
const path = require('path'), readline = require('readline');
const ORT_DIR = process.env.ORT_DIR;
if (!ORT_DIR) { console.error('ORT_DIR is not set (../shared/bench/setup_ort.sh installs ONNX Runtime)'); process.exit(2); }
const ort = require(path.join(ORT_DIR, 'node_modules', 'onnxruntime-node'));

function noise(n) {
  const x = new Float32Array(n); let r = 12345;
  for (let i = 0; i < n; i++) { r = (r * 1103515245 + 12345) % 2147483648; x[i] = r / 2147483648 * 2 - 1; }
  return x;
}

(async () => {
  let threads = 2, size = 256, channels = 1; const files = {};
  for (let i = 2; i < process.argv.length; i++) {
    if (process.argv[i] === '--threads') { threads = Number(process.argv[++i]); continue; }
    if (process.argv[i] === '--size') { size = Number(process.argv[++i]); continue; }
    if (process.argv[i] === '--channels') { channels = Number(process.argv[++i]); continue; }
    const [key, file] = process.argv[i].split('=');
    files[key] = file;
  }
  const sessions = {};
  for (const [key, file] of Object.entries(files)) {
    const s = await ort.InferenceSession.create(file, {intraOpNumThreads: threads, interOpNumThreads: 1,
      graphOptimizationLevel: 'all', executionMode: 'sequential'});
    sessions[key] = {s, dims: [1, channels, size, size]};  // the exporter's fixed input
  }
  console.log(JSON.stringify({ready: Object.keys(sessions)}));
  const rl = readline.createInterface({input: process.stdin});
  for await (const line of rl) {
    const [key, runsText] = line.trim().split(/\s+/);
    if (key === 'quit') break;
    const e = sessions[key];
    if (!e) { console.log(JSON.stringify({key, error: 'unknown key'})); continue; }
    if (!e.feeds) {
      e.feeds = {[e.s.inputNames[0]]: new ort.Tensor('float32', noise(e.dims.reduce((a, b) => a * b, 1)), e.dims)};
    }
    for (let i = 0; i < 2; i++) await e.s.run(e.feeds);
    const ms = [];
    for (let i = 0; i < Number(runsText); i++) {
      const t = process.hrtime.bigint(); await e.s.run(e.feeds); ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    console.log(JSON.stringify({key, ms}));
  }
  process.exit(0);
})().catch(e => { console.error(String(e)); process.exit(1); });
