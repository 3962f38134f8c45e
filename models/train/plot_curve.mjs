// Draws the U-Net's training curve from the committed log (state/train_log.jsonl): v-MSE per 100 steps, and the
// periodic probes — the t = 999 gain ratio and the judge's top-1/top-5 on one-step predictions — against the step.
//
//   node models/train/plot_curve.mjs [state/train_log.jsonl] [docs/default-model-training.png]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sharp = createRequire(join(here, '..', '..', 'package.json'))('sharp');
const logFile = process.argv[2] ?? join(here, 'state', 'train_log.jsonl');
const out = process.argv[3] ?? join(here, '..', '..', 'docs', 'default-model-training.png');

const entries = readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
const losses = entries.filter((e) => 'v_mse' in e).map((e) => [e.step, e.v_mse]);
const probes = entries.filter((e) => 'eval' in e && 'gain_ratio' in e);
const series = [
  { name: 'gain ratio at t = 999', colour: '#1f77b4', points: probes.map((e) => [e.eval, e.gain_ratio]) },
  { name: 'judge top-1, one step', colour: '#d62728', points: probes.filter((e) => 'judge_top1_one_step' in e).map((e) => [e.eval, e.judge_top1_one_step]) },
  { name: 'judge top-5, one step', colour: '#ff7f0e', points: probes.filter((e) => 'judge_top5_one_step' in e).map((e) => [e.eval, e.judge_top5_one_step]) },
];
const width = 900;
const height = 420;
const pad = { left: 60, right: 60, top: 30, bottom: 50 };
const maxStep = Math.max(1, ...losses.map(([s]) => s), ...probes.map((e) => e.eval));
const maxLoss = Math.max(0.1, ...losses.map(([, l]) => l));
const x = (step) => pad.left + (step / maxStep) * (width - pad.left - pad.right);
const yRatio = (value) => height - pad.bottom - Math.max(0, Math.min(1, value)) * (height - pad.top - pad.bottom);
const yLoss = (value) => height - pad.bottom - (value / maxLoss) * (height - pad.top - pad.bottom);
const path = (points, y) => points.map(([s, v], k) => `${k ? 'L' : 'M'}${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' ');

const ticks = [0, 0.25, 0.5, 0.75, 1].map((v) => `<line x1="${pad.left}" x2="${width - pad.right}" y1="${yRatio(v)}" y2="${yRatio(v)}" stroke="#eee"/><text x="${pad.left - 8}" y="${yRatio(v) + 4}" text-anchor="end">${v}</text>`).join('');
const stepTicks = Array.from({ length: 6 }, (_, k) => Math.round((k * maxStep) / 5)).map((s) => `<text x="${x(s)}" y="${height - pad.bottom + 18}" text-anchor="middle">${s}</text>`).join('');
const legend = [{ name: 'v-MSE (right axis)', colour: '#888' }, ...series].map((s, k) => `<rect x="${pad.left + 10 + k * 200}" y="8" width="12" height="12" fill="${s.colour}"/><text x="${pad.left + 28 + k * 200}" y="18">${s.name}</text>`).join('');
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>${ticks}${stepTicks}
<text x="${width / 2}" y="${height - 12}" text-anchor="middle">U-Net step (batch 64)</text>
<text x="${width - pad.right + 8}" y="${yLoss(maxLoss) + 4}">${maxLoss.toFixed(2)}</text><text x="${width - pad.right + 8}" y="${yLoss(0) + 4}">0</text>
<path d="${path(losses, yLoss)}" fill="none" stroke="#888" stroke-width="1"/>
${series.map((s) => `<path d="${path(s.points, yRatio)}" fill="none" stroke="${s.colour}" stroke-width="2"/>`).join('')}
${legend}</svg>`;
await sharp(Buffer.from(svg)).png().toFile(out);
console.log(JSON.stringify({ out, steps: maxStep, probes: probes.length }));
